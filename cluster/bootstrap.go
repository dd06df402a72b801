package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
)

// PeerStatus asks a peer server for its Raft status (over gRPC, in the
// agent); the bootstrapper uses it to learn whether a cluster already exists.
type PeerStatus func(ctx context.Context, m Member) (hasState bool, err error)

// BootstrapExpect forms the first quorum once expect servers have met
// through gossip, Consul-style, without a manual bootstrap step:
//
//   - it only runs on a server whose data dir has no Raft state;
//   - it waits until gossip shows at least expect alive servers;
//   - the initial configuration is the expect servers with the lowest
//     ids, so every server computes the same one; a server not among them
//     does not bootstrap and is added by the leader's reconcile loop;
//   - before bootstrapping it asks every chosen peer whether it has Raft
//     state; if one has, a cluster exists and nobody bootstraps.
//
// It returns nil once this node bootstrapped, found it need not, or
// learned of a leader, and ctx.Err() when ctx ends first.
func BootstrapExpect(ctx context.Context, expect int, r *Raft, g *Gossip, status PeerStatus, log *slog.Logger) error {
	log = log.With("component", "bootstrap")
	if expect < 1 {
		return errors.New("cluster: bootstrap-expect must be at least 1")
	}
	events, unsubscribe := g.Subscribe(16)
	defer unsubscribe()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	logged := false
	for {
		if r.HasState() {
			return nil
		}
		if id, _ := r.Leader(); id != "" {
			return nil
		}
		var servers []Member
		for _, m := range g.Members() {
			if m.Role == RoleServer && m.Alive() && !m.Leaving {
				servers = append(servers, m)
			}
		}
		if len(servers) >= expect {
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			chosen := servers[:expect]
			done, err := tryBootstrap(ctx, chosen, r, status, log)
			if done {
				return nil
			}
			if err != nil {
				log.Warn("not bootstrapping yet", "err", err)
			}
		} else if !logged {
			log.Info("waiting for servers to join before forming the cluster", "expect", expect, "seen", len(servers))
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-events:
		case <-tick.C:
		}
	}
}

func tryBootstrap(ctx context.Context, chosen []Member, r *Raft, status PeerStatus, log *slog.Logger) (bool, error) {
	self := false
	var cfg []Server
	for _, m := range chosen {
		if m.ID == r.ID() {
			self = true
		}
		if m.RaftAddr == "" {
			return false, fmt.Errorf("server %s gossips no Raft address", m.ID)
		}
		cfg = append(cfg, Server{ID: m.ID, Address: m.RaftAddr, Voter: true})
	}
	if !self {
		log.Info("not among the initial servers; waiting to be added by the leader")
		return true, nil
	}
	for _, m := range chosen {
		if m.ID == r.ID() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		has, err := status(sctx, m)
		cancel()
		if err != nil {
			return false, fmt.Errorf("asking %s for its raft state: %w", m.ID, err)
		}
		if has {
			log.Info("a peer already has raft state; joining the existing cluster instead of bootstrapping", "peer", m.ID)
			return true, nil
		}
	}
	err := r.BootstrapCluster(cfg)
	if errors.Is(err, ErrAlreadyBootstrapped) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	ids := make([]string, len(cfg))
	for i, s := range cfg {
		ids[i] = s.ID
	}
	log.Info("bootstrapped the cluster", "servers", ids)
	return true, nil
}
