package async

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// follow keeps the scheduler in step with the replicated queue: every new
// log entry's changed events are planned (EachAsyncEventModifiedAfter, so
// a pass costs what changed, not the queue's size), and on membership
// changes and every RescanInterval every event this node holds is
// re-planned, which moves ownership to this node when the holders before
// it died, and starts repairs of payloads that lost a copy.
func (q *Queue) follow() {
	applied := make(chan struct{}, 1)
	// Tracked like every queue goroutine, so Close returns only after it ends.
	q.goRun(func() { q.watchApplied(applied) })
	changes, cancel := q.deps.Members.Subscribe()
	defer cancel()
	tick := time.NewTicker(q.cfg.RescanInterval)
	defer tick.Stop()

	last := q.deps.Replica.AppliedIndex()
	q.rescan()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-applied:
			idx := q.deps.Replica.AppliedIndex()
			if idx <= last {
				continue
			}
			q.deps.Replica.View().EachAsyncEventModifiedAfter(last, func(ev *fsmpb.AsyncEvent) bool {
				q.sched.observe(ev, q.owns(ev))
				return true
			})
			last = idx
		case <-changes:
			q.rescan()
		case <-tick.C:
			q.rescan()
		}
	}
}

// watchApplied signals every advance of the applied index (coalesced).
func (q *Queue) watchApplied(out chan<- struct{}) {
	for {
		next := q.deps.Replica.AppliedIndex() + 1
		if err := q.deps.Replica.WaitForIndex(q.ctx, next); err != nil {
			return
		}
		select {
		case out <- struct{}{}:
		default:
		}
	}
}

// rescan re-plans every event this node holds and repairs the ones it owns
// that lost a holder.
func (q *Queue) rescan() {
	var repair []*fsmpb.AsyncEvent
	q.deps.Replica.View().EachAsyncEventHeldBy(q.cfg.NodeID, func(ev *fsmpb.AsyncEvent) bool {
		owned := q.owns(ev)
		q.sched.observe(ev, owned)
		if owned && q.lostHolder(ev) {
			repair = append(repair, ev)
		}
		return q.ctx.Err() == nil
	})
	if len(repair) > 0 && q.repairing.CompareAndSwap(false, true) {
		// Copying runs beside the follow loop, one repair at a time; the
		// next rescan picks up whatever this one did not finish.
		q.goRun(func() {
			defer q.repairing.Store(false)
			q.repair(repair)
		})
	}
}

// lostHolder reports whether a holder of ev other than this node is dead.
func (q *Queue) lostHolder(ev *fsmpb.AsyncEvent) bool {
	for _, h := range ev.Holders {
		if h != q.cfg.NodeID && !q.deps.Members.IsAlive(h) {
			return true
		}
	}
	return false
}

// maxRepairBatch bounds the events one repair pass copies at once.
const maxRepairBatch = 500

// repair restores the number of copies of events whose holders died: it
// copies their payloads to live nodes that do not hold them and commits
// the new holder lists with this node first (it owns them now). Dead
// holders are dropped once enough live copies exist, so a holder that
// comes back later does not deliver them again (the sweep deletes its
// stale copies); while too few live nodes exist they stay listed, behind
// this node, as copies that may return.
func (q *Queue) repair(evs []*fsmpb.AsyncEvent) {
	for len(evs) > 0 && q.ctx.Err() == nil {
		batch := evs[:min(len(evs), maxRepairBatch)]
		evs = evs[len(batch):]
		// Group by the set of live holders, so each group shares targets.
		type group struct {
			live []string
			evs  []*fsmpb.AsyncEvent
			ps   []*rpcpb.EventPayload
		}
		groups := map[string]*group{}
		for _, ev := range batch {
			live := []string{q.cfg.NodeID}
			for _, h := range ev.Holders {
				if h != q.cfg.NodeID && q.deps.Members.IsAlive(h) {
					live = append(live, h)
				}
			}
			p, err := q.store.Get(ev.Id)
			if err != nil {
				q.log.Warn("cannot re-replicate an event this node owns but does not hold", "event", ev.Id, "err", err)
				continue
			}
			key := strings.Join(live, ",")
			g := groups[key]
			if g == nil {
				g = &group{live: live}
				groups[key] = g
			}
			g.evs = append(g.evs, ev)
			g.ps = append(g.ps, p)
		}
		for _, g := range groups {
			holders := slices.Clone(g.live)
			for _, node := range q.replicaCandidates(g.live) {
				if len(holders) >= q.cfg.Copies {
					break
				}
				ctx, cancel := context.WithTimeout(q.ctx, q.storeTimeout())
				err := q.storeOn(ctx, node, g.ps)
				cancel()
				if err != nil {
					q.log.Warn("re-replication to a node failed", "node", node, "err", err)
					continue
				}
				holders = append(holders, node)
			}
			copied := len(holders) > len(g.live)
			for _, ev := range g.evs {
				next := holders
				if len(holders) < q.cfg.Copies {
					for _, h := range ev.Holders {
						if !slices.Contains(next, h) {
							next = append(slices.Clone(next), h)
						}
					}
				}
				if slices.Equal(next, ev.Holders) {
					continue
				}
				q.set.settle(&fsmpb.AsyncEventUpdate{Id: ev.Id, Action: fsmpb.AsyncAction_ASYNC_ACTION_SET_HOLDERS, Holders: next}, nil)
				if copied {
					q.m.repaired.Inc()
				}
			}
		}
	}
}

// housekeep runs the periodic sweeps: payloads of events that no longer
// exist (or that this node no longer holds) leave the payload log, and the
// leader purges dead letters past their retention.
func (q *Queue) housekeep() {
	tick := time.NewTicker(q.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-tick.C:
		}
		q.sweep()
		if q.deps.Replica.IsLeader() {
			q.expireDeadLetters()
			q.dropOrphans()
		}
	}
}

// sweep deletes payloads this node need not keep.
func (q *Queue) sweep() int {
	v := q.deps.Replica.View()
	return q.store.Sweep(time.Now().Add(-q.cfg.SweepGrace), func(id string) bool {
		ev := v.AsyncEvent(id)
		return ev != nil && slices.Contains(ev.Holders, q.cfg.NodeID)
	})
}

func (q *Queue) expireDeadLetters() {
	cutoff := time.Now().Add(-q.cfg.DeadLetterRetention).UnixNano()
	old := false
	q.deps.Replica.View().EachDeadLetter(func(ev *fsmpb.AsyncEvent) bool {
		old = ev.DeadUnixNano < cutoff
		return !old
	})
	if !old {
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.cfg.AcceptTimeout)
	defer cancel()
	if _, err := q.deps.Replica.Apply(ctx, &fsmpb.AsyncPurgeCmd{Header: &fsmpb.Header{}, DeadBeforeUnixNano: cutoff}); err != nil {
		q.log.Warn("dead-letter retention purge failed; will retry", "err", err)
	}
}

// dropOrphans deletes the events whose every holder has left the
// cluster's committed nodes (reaped after ReapTimeout, or removed): no node
// will ever own or deliver them, and their payloads are gone with their
// holders. Events whose holders are merely dead stay: a holder may come
// back with its disk. Each drop is logged and counted.
func (q *Queue) dropOrphans() {
	committed := map[string]bool{}
	for _, id := range q.deps.Members.Nodes() {
		committed[id] = true
	}
	var orphans []*fsmpb.AsyncEvent
	v := q.deps.Replica.View()
	each := func(ev *fsmpb.AsyncEvent) bool {
		for _, h := range ev.Holders {
			if committed[h] {
				return true
			}
		}
		orphans = append(orphans, ev)
		return len(orphans) < maxSettleBatch
	}
	v.EachPendingAsyncEvent(each)
	for _, ev := range orphans {
		q.log.Error("dropping an event whose payload holders all left the cluster", "event", ev.Id, "function", ev.FunctionName, "holders", ev.Holders)
		q.m.dropped.WithLabelValues(ev.AccountId, ev.FunctionName, "payload_lost").Inc()
		q.set.settle(&fsmpb.AsyncEventUpdate{Id: ev.Id, Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE}, nil)
	}
}

// EventPayload returns the payload of a queued or dead-lettered event from
// this node's log or from another holder (for `stoke dlq show`).
func (q *Queue) EventPayload(ctx context.Context, id string) ([]byte, string, error) {
	ev := q.deps.Replica.View().AsyncEvent(id)
	if ev == nil {
		return nil, "", ErrPayloadNotFound
	}
	p, err := q.payload(ctx, ev)
	if err != nil {
		return nil, "", err
	}
	return p.Payload, p.ClientContext, nil
}
