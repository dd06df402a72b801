package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stokehq/stoke/cluster"
)

// drainState counts in-flight work and refuses new work once draining.
type drainState struct {
	mu       sync.Mutex
	draining bool
	inflight int
	idle     chan struct{} // closed when draining and inflight is 0
}

// Draining reports whether this node stopped taking new work (it is
// leaving the cluster). The invoke path checks it, or uses BeginWork.
func (a *Agent) Draining() bool {
	a.drain.mu.Lock()
	defer a.drain.mu.Unlock()
	return a.drain.draining
}

// BeginWork registers one unit of in-flight work (an invocation) and
// returns the function that ends it. ok is false once the node is
// draining: the caller must not start the work here (place it elsewhere).
// A graceful leave waits for every registered unit to end, up to
// ClusterConfig.DrainTimeout.
func (a *Agent) BeginWork() (done func(), ok bool) {
	d := &a.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return func() {}, false
	}
	d.inflight++
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.inflight--
			if d.draining && d.inflight == 0 && d.idle != nil {
				close(d.idle)
				d.idle = nil
			}
		})
	}, true
}

// startDrain stops new work and returns a channel closed once in-flight
// work has ended.
func (a *Agent) startDrain() <-chan struct{} {
	d := &a.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	ch := make(chan struct{})
	if d.inflight == 0 {
		close(ch)
	} else {
		d.idle = ch
	}
	return ch
}

// ErrLeft is returned by Leave on a node that already left.
var ErrLeft = errors.New("node: already left the cluster")

// Leave takes this node out of the cluster gracefully and then stops it:
//
//  1. stop taking new work (Draining, gossiped in the load summary) and
//     wait for in-flight work up to DrainTimeout;
//  2. gossip the leaving flag, so the leader does not add the node back
//     and peers will record a leave rather than a failure;
//  3. hand leadership to another voter if this node leads;
//  4. ask the leader to remove this node from Raft and the node records;
//  5. leave gossip; Run then returns.
//
// ctx bounds steps 3 and 4.
func (a *Agent) Leave(ctx context.Context) error {
	if !a.leaving.CompareAndSwap(false, true) {
		return ErrLeft
	}
	log := a.log.With("op", "leave")
	idle := a.startDrain()
	a.gossip.SetLoad(a.withDraining(a.gossip.Load()))
	select {
	case <-idle:
	case <-time.After(a.cfg.Cluster.DrainTimeout):
		log.Warn("in-flight work did not finish within the drain timeout; leaving anyway", "timeout", a.cfg.Cluster.DrainTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	bcast := a.gossip.Config().TCPTimeout
	if err := a.gossip.AnnounceLeaving(bcast); err != nil {
		log.Warn("leaving flag not acknowledged", "err", err)
	}
	if err := a.leaveRaft(ctx); err != nil {
		return err
	}
	if err := a.gossip.Leave(bcast); err != nil {
		log.Warn("gossip leave incomplete", "err", err)
	}
	log.Info("left the cluster")
	a.leftOnce.Do(func() { close(a.left) })
	return nil
}

func (a *Agent) withDraining(l cluster.LoadSummary) cluster.LoadSummary {
	l.Draining = true
	return l
}

// leaveRaft transfers leadership away if needed and has the leader remove
// this node. A lone node has nobody to tell.
func (a *Agent) leaveRaft(ctx context.Context) error {
	servers, err := a.raft.Configuration()
	if err != nil {
		return err
	}
	others := 0
	for _, s := range servers {
		if s.ID != a.nodeID && s.Voter {
			others++
		}
	}
	if others == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		err := a.removeSelf(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, cluster.ErrRefused) || errors.Is(err, cluster.ErrUnauthenticated) {
			return fmt.Errorf("node: leave: %w", err)
		}
		a.log.Debug("leave: retrying removal from raft", "err", err)
		if !backoff(ctx, attempt) {
			return fmt.Errorf("node: leave: %w", unavailable(err))
		}
	}
}

func (a *Agent) removeSelf(ctx context.Context) error {
	if a.raft.IsLeader() {
		a.log.Info("leave: transferring leadership first")
		if err := a.raft.LeadershipTransfer(ctx); err != nil {
			return err
		}
	}
	leader, _ := a.raft.Leader()
	if leader == "" || leader == a.nodeID {
		return cluster.ErrNoLeader
	}
	return a.forwarder.RemovePeer(ctx, leader, a.nodeID, false)
}

// leadershipHandOffTimeout bounds the leadership transfer of a stopping
// leader; raft itself gives up after an election timeout.
const leadershipHandOffTimeout = 5 * time.Second

// handOffLeadership moves Raft leadership to another voter when this node
// leads and is stopping gracefully. Everything else in the cluster reaches
// the leader over gRPC (lease renewals, forwarded writes, read indexes),
// and a stopping node closes its gRPC server long before Raft lets go; a
// leader that just disappeared would leave the cluster without one for a
// heartbeat timeout and an election, a leader that lingers longer still.
// Best effort: on failure the cluster elects a leader the usual way.
func (a *Agent) handOffLeadership() {
	if !a.raft.IsLeader() {
		return
	}
	servers, err := a.raft.Configuration()
	if err != nil {
		return
	}
	others := 0
	for _, s := range servers {
		if s.ID != a.nodeID && s.Voter {
			others++
		}
	}
	if others == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leadershipHandOffTimeout)
	defer cancel()
	if err := a.raft.LeadershipTransfer(ctx); err != nil {
		a.log.Warn("leadership not handed off before stopping; the others will elect a leader", "err", err)
		return
	}
	leader, _ := a.raft.Leader()
	a.log.Info("handed leadership off before stopping", "leader", leader)
}

// ForceLeave removes a dead node from Raft and the node records, through
// the leader. It refuses a node that is alive.
func (a *Agent) ForceLeave(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		var err error
		if rem := a.leaderRemover(); rem != nil {
			err = rem.RemovePeer(ctx, id, true)
		} else if leader, _ := a.raft.Leader(); leader == "" {
			err = cluster.ErrNoLeader
		} else {
			err = a.forwarder.RemovePeer(ctx, leader, id, true)
		}
		if err == nil || !retryable(err) {
			return err
		}
		if !backoff(ctx, attempt) {
			return unavailable(err)
		}
	}
}

// Left is closed once the node left the cluster (Run returns then).
func (a *Agent) Left() <-chan struct{} { return a.left }
