package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// ReconcileConfig configures the leader's reconcile loop.
type ReconcileConfig struct {
	// Interval is how often a full pass runs besides the passes membership
	// events trigger.
	Interval time.Duration
	// ReapTimeout is how long a member stays dead (or absent from gossip
	// while still in Raft or the node records) before it is removed.
	ReapTimeout time.Duration
	// BootstrapExpect is the number of servers the cluster was formed with;
	// reaping never leaves fewer voters than its quorum (N/2+1).
	BootstrapExpect int
	// PassTimeout bounds one pass.
	PassTimeout time.Duration
	// Verify, when set, must succeed before a member is added to Raft: the
	// agent checks that the member answers authenticated gRPC, so a node
	// with another TLS CA never enters the configuration.
	Verify func(ctx context.Context, m Member) error

	Logger *slog.Logger
}

// DefaultReconcileConfig returns production settings.
func DefaultReconcileConfig() ReconcileConfig {
	return ReconcileConfig{
		Interval:        30 * time.Second,
		ReapTimeout:     72 * time.Hour,
		BootstrapExpect: 1,
		PassTimeout:     30 * time.Second,
		Logger:          slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c *ReconcileConfig) Validate() error {
	switch {
	case c.Interval <= 0 || c.ReapTimeout <= 0 || c.PassTimeout <= 0:
		return errors.New("reconcile: Interval, ReapTimeout and PassTimeout must be positive")
	case c.BootstrapExpect < 1:
		return errors.New("reconcile: BootstrapExpect must be at least 1")
	case c.Logger == nil:
		return errors.New("reconcile: Logger is required")
	}
	return nil
}

// Reconciler makes the Raft configuration and the committed node records
// follow gossip membership. It runs on the leader only (Start on gaining
// leadership, Stop on losing it). Every pass is idempotent: it compares
// the three views and changes only what differs, so passes can rerun at
// any time. Nomad's and Consul's leaders work the same way.
type Reconciler struct {
	cfg    ReconcileConfig
	raft   *Raft
	gossip *Gossip
	log    *slog.Logger

	// passMu serialises passes and RemovePeer: one membership change at a time.
	passMu sync.Mutex

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	trigger chan struct{}
	// missing is when each id in Raft or the records was first seen absent
	// from gossip (for instance after this leader restarted).
	missing map[string]time.Time
	passes  int
}

// NewReconciler returns a stopped reconciler.
func NewReconciler(cfg ReconcileConfig, r *Raft, g *Gossip) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Reconciler{cfg: cfg, raft: r, gossip: g, log: cfg.Logger.With("component", "reconcile"),
		trigger: make(chan struct{}, 1), missing: map[string]time.Time{}}, nil
}

// Start runs the loop until Stop. Calling it while running does nothing.
func (r *Reconciler) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	r.missing = map[string]time.Time{}
	go r.run(ctx, r.done)
}

// Stop ends the loop and waits for the pass in progress.
func (r *Reconciler) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Trigger asks for a pass soon.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *Reconciler) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	events, unsubscribe := r.gossip.Subscribe(64)
	defer unsubscribe()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PassTimeout)
		if err := r.Pass(pctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass incomplete; will retry", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if ev.Kind == EventUpdate && !ev.Member.Leaving {
				continue // load changes need no pass; the periodic one catches meta edits
			}
		case <-r.trigger:
		case <-tick.C:
		}
	}
}

// Pass reconciles once. It must run on the leader.
func (r *Reconciler) Pass(ctx context.Context) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	r.mu.Lock()
	r.passes++
	r.mu.Unlock()
	servers, err := r.raft.Configuration()
	if err != nil {
		return err
	}
	inRaft := map[string]Server{}
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	records := map[string]*fsmpb.Node{}
	for _, n := range r.raft.Store().View().Nodes() {
		records[n.Id] = n
	}
	members := map[string]Member{}
	for _, m := range r.gossip.Members() {
		members[m.ID] = m
	}
	now := time.Now()
	var errs []error
	for _, m := range members {
		switch {
		case m.ID == r.raft.ID():
			errs = append(errs, r.ensureRecord(ctx, m, records[m.ID]))
		case m.Status == StatusLeft:
			errs = append(errs, r.remove(ctx, m.ID, "left", 1, inRaft, members, records))
		case m.Status == StatusDead && now.Sub(m.Since) >= r.cfg.ReapTimeout:
			errs = append(errs, r.remove(ctx, m.ID, "reaped", r.quorumFloor(), inRaft, members, records))
		case m.Alive() && !m.Leaving:
			errs = append(errs, r.ensureMember(ctx, m, inRaft, records[m.ID]))
		}
	}
	// Ids Raft or the records know but gossip does not: reap after the
	// timeout, counted from when this leader first noticed.
	for id := range union(inRaft, records) {
		if _, ok := members[id]; ok || id == r.raft.ID() {
			delete(r.missing, id)
			continue
		}
		first, ok := r.missing[id]
		if !ok {
			r.missing[id] = now
			continue
		}
		if now.Sub(first) >= r.cfg.ReapTimeout {
			errs = append(errs, r.remove(ctx, id, "reaped (unknown to gossip)", r.quorumFloor(), inRaft, members, records))
		}
	}
	return errors.Join(errs...)
}

func union(a map[string]Server, b map[string]*fsmpb.Node) map[string]struct{} {
	out := map[string]struct{}{}
	for id := range a {
		out[id] = struct{}{}
	}
	for id := range b {
		out[id] = struct{}{}
	}
	return out
}

// ensureMember puts an alive member into Raft with the suffrage of its
// role and makes its node record match its gossip meta.
func (r *Reconciler) ensureMember(ctx context.Context, m Member, inRaft map[string]Server, rec *fsmpb.Node) error {
	s, ok := inRaft[m.ID]
	wantVoter := m.Role == RoleServer
	if m.RaftAddr == "" {
		return fmt.Errorf("reconcile: %s gossips no Raft address", m.ID)
	}
	if !ok || s.Address != m.RaftAddr || (wantVoter && !s.Voter) {
		// A member that gossips to other machines but advertises loopback
		// would join as a peer nobody reaches, and replication to it would
		// fail forever (agents refuse to start that way; older ones did not).
		if err := CheckAdvertised(m.GossipAddr,
			Advertised{What: "Raft", Addr: m.RaftAddr, Flag: "--raft-advertise"},
			Advertised{What: "gRPC", Addr: m.GRPCAddr, Flag: "--grpc-advertise"},
			Advertised{What: "HTTP", Addr: m.HTTPAddr, Flag: "--http-advertise"}); err != nil {
			return fmt.Errorf("reconcile: not adding %s: %w", m.ID, err)
		}
		if r.cfg.Verify != nil {
			if err := r.cfg.Verify(ctx, m); err != nil {
				return fmt.Errorf("reconcile: not adding %s: cannot verify it over authenticated gRPC: %w", m.ID, err)
			}
		}
		var err error
		if wantVoter {
			err = r.raft.AddVoter(ctx, m.ID, m.RaftAddr)
		} else {
			err = r.raft.AddNonvoter(ctx, m.ID, m.RaftAddr)
		}
		if err != nil {
			return fmt.Errorf("reconcile: add %s to raft: %w", m.ID, err)
		}
		r.log.Info("added member to raft", "member", m.ID, "role", m.Role, "voter", wantVoter, "raft_addr", m.RaftAddr)
	} else if !wantVoter && s.Voter {
		// A server restarted as a worker. Demoting a voter is left to the
		// operator (force-leave, then rejoin): it changes the quorum.
		r.log.Warn("member is a raft voter but runs as a worker; not demoting it", "member", m.ID)
	}
	return r.ensureRecord(ctx, m, rec)
}

func nodeRecord(m Member) *fsmpb.Node {
	return &fsmpb.Node{Id: m.ID, Role: m.Role.String(), HttpAddr: m.HTTPAddr, GrpcAddr: m.GRPCAddr,
		RaftAddr: m.RaftAddr, GossipAddr: m.GossipAddr, MemoryMb: m.MemoryMB, Cpus: int32(m.CPUs),
		BuildVersion: m.BuildVersion}
}

func (r *Reconciler) ensureRecord(ctx context.Context, m Member, rec *fsmpb.Node) error {
	want := nodeRecord(m)
	if rec != nil {
		got := proto.Clone(rec).(*fsmpb.Node)
		got.JoinedUnixNano = 0
		if proto.Equal(got, want) {
			return nil
		}
	}
	if _, err := r.raft.Apply(ctx, &fsmpb.UpsertNodeCmd{Header: &fsmpb.Header{}, Node: want}); err != nil {
		return fmt.Errorf("reconcile: record %s: %w", m.ID, err)
	}
	return nil
}

// quorumFloor is the fewest voters reaping may leave: the quorum of the
// cluster as it was formed.
func (r *Reconciler) quorumFloor() int { return r.cfg.BootstrapExpect/2 + 1 }

// canRemoveVoter reports why removing voter id would endanger the
// cluster, or "" when it is safe: the remaining voters must be at least
// floor, and a majority of them must be alive.
func canRemoveVoter(id string, inRaft map[string]Server, members map[string]Member, floor int) string {
	remaining, alive := 0, 0
	for sid, s := range inRaft {
		if !s.Voter || sid == id {
			continue
		}
		remaining++
		if m, ok := members[sid]; ok && m.Alive() {
			alive++
		}
	}
	switch {
	case remaining < floor:
		return fmt.Sprintf("%d voters would remain, fewer than the quorum floor %d", remaining, floor)
	case alive*2 <= remaining:
		return fmt.Sprintf("only %d of the %d remaining voters are alive", alive, remaining)
	}
	return ""
}

// remove takes id out of Raft and the records, unless it is this node or
// a voter whose removal would leave fewer than floor voters or no alive
// majority. A graceful leave uses floor 1 (the operator asked for it);
// reaping uses the quorum floor.
func (r *Reconciler) remove(ctx context.Context, id, why string, floor int, inRaft map[string]Server, members map[string]Member, records map[string]*fsmpb.Node) error {
	if id == r.raft.ID() {
		return nil
	}
	if s, ok := inRaft[id]; ok {
		if s.Voter {
			if reason := canRemoveVoter(id, inRaft, members, floor); reason != "" {
				r.log.Warn("not removing voter", "member", id, "why", why, "reason", reason)
				return nil
			}
		}
		if err := r.raft.RemoveServer(ctx, id); err != nil {
			return fmt.Errorf("reconcile: remove %s from raft: %w", id, err)
		}
		r.log.Info("removed member from raft", "member", id, "why", why, "voter", s.Voter)
	}
	if _, ok := records[id]; ok {
		if _, err := r.raft.Apply(ctx, &fsmpb.RemoveNodeCmd{Header: &fsmpb.Header{}, NodeId: id}); err != nil {
			return fmt.Errorf("reconcile: remove record %s: %w", id, err)
		}
	}
	delete(r.missing, id)
	r.gossip.Forget(id)
	return nil
}

// RemovePeer removes a node on request: one leaving gracefully (force
// false), or one an operator gives up on (force true: refused while the
// node is alive, and never below the quorum floor). Leader only.
func (r *Reconciler) RemovePeer(ctx context.Context, id string, force bool) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	if !r.raft.IsLeader() {
		return r.raft.notLeader()
	}
	if id == r.raft.ID() {
		return fmt.Errorf("%w: the leader cannot remove itself; transfer leadership first", ErrRefused)
	}
	servers, err := r.raft.Configuration()
	if err != nil {
		return err
	}
	inRaft := map[string]Server{}
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	members := map[string]Member{}
	for _, m := range r.gossip.Members() {
		members[m.ID] = m
	}
	records := map[string]*fsmpb.Node{}
	for _, n := range r.raft.Store().View().Nodes() {
		records[n.Id] = n
	}
	_, known := members[id]
	if _, ok := inRaft[id]; !ok && !known && records[id] == nil {
		return nil // already gone: removal is idempotent
	}
	why := "left"
	if force {
		if m, ok := members[id]; ok && m.Alive() && !m.Leaving {
			return fmt.Errorf("%w: node %s is alive; stop it, or run `stoke cluster leave` on it", ErrRefused, id)
		}
		why = "force-leave"
		if s, ok := inRaft[id]; ok && s.Voter {
			if reason := canRemoveVoter(id, inRaft, members, r.quorumFloor()); reason != "" {
				return fmt.Errorf("%w: removing voter %s: %s", ErrRefused, id, reason)
			}
		}
	}
	// force-leave was checked against the quorum floor above.
	return r.remove(ctx, id, why, 1, inRaft, members, records)
}

// Passes is how many passes ran (tests use it to wait for a fresh one).
func (r *Reconciler) Passes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passes
}
