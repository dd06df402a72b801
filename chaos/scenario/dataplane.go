package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Helpers the data-plane scenarios share.

// waitDeclared waits until observer's gossip view reports victim with one
// of the given statuses ("dead", "left", "alive") and returns when, on the
// recorder's clock.
func (e *Env) waitDeclared(ctx context.Context, observer, victim *harness.Node, statuses ...string) (time.Duration, error) {
	admin := e.Admin()
	err := harness.Poll(ctx, 100*time.Millisecond, func() error {
		members, err := admin.Members(ctx, observer.Endpoint())
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.Node != victim.ID {
				continue
			}
			for _, s := range statuses {
				if m.Status == s {
					return nil
				}
			}
			return fmt.Errorf("%s sees %s %s", observer, victim, m.Status)
		}
		return fmt.Errorf("%s does not list %s", observer, victim)
	})
	return e.Rec.Now(), err
}

// invokeCaller is one sequential caller of an invokeLoad.
type invokeCaller interface {
	Invoke(ctx context.Context, fn, qualifier, nonce string, sleepMS int) history.Op
}

// rotation is the set of nodes in service, as a load balancer in front of
// the cluster would keep it: an operator takes a node out before
// restarting it and puts it back once it is ready.
type rotation struct {
	mu sync.Mutex
	in map[*harness.Node]bool
}

func newRotation(nodes []*harness.Node) *rotation {
	r := &rotation{in: map[*harness.Node]bool{}}
	for _, n := range nodes {
		r.in[n] = true
	}
	return r
}

func (r *rotation) set(n *harness.Node, in bool) {
	r.mu.Lock()
	r.in[n] = in
	r.mu.Unlock()
}

// pick returns a node in rotation chosen with rng, or nil when none is.
func (r *rotation) pick(rng *rand.Rand) *harness.Node {
	r.mu.Lock()
	var nodes []*harness.Node
	for n, in := range r.in {
		if in {
			nodes = append(nodes, n)
		}
	}
	r.mu.Unlock()
	if len(nodes) == 0 {
		return nil
	}
	// Map order is random; sort so the seed alone decides.
	slices.SortFunc(nodes, func(a, b *harness.Node) int { return a.Index - b.Index })
	return nodes[rng.IntN(len(nodes))]
}

// balancedCaller sends each call to a node in rotation, through one
// recording client per node sharing one client id.
type balancedCaller struct {
	rot   *rotation
	rng   *rand.Rand
	peers map[*harness.Node]*client.Invoker
}

func (e *Env) balancedCaller(id int, rot *rotation) *balancedCaller {
	b := &balancedCaller{rot: rot, rng: rand.New(rand.NewPCG(uint64(e.Seed), uint64(id))), peers: map[*harness.Node]*client.Invoker{}}
	for _, n := range e.c.Nodes() {
		b.peers[n] = e.Invoker(id, n)
	}
	return b
}

func (b *balancedCaller) Invoke(ctx context.Context, fn, qualifier, nonce string, sleepMS int) history.Op {
	n := b.rot.pick(b.rng)
	if n == nil {
		return history.Op{}
	}
	return b.peers[n].Invoke(ctx, fn, qualifier, nonce, sleepMS)
}

// syncSummary fills the common fields of a sync-invocation scenario's
// summary and fails it for any wrong result.
func syncSummary(s *check.Summary, ops []history.Op, from, until time.Duration) check.SyncReport {
	r := check.SyncInvocations(ops, time.Second)
	s.Ops, s.Acked, s.Lost, s.Duplicates = r.Calls, r.OKs, len(r.Wrong), -1
	s.MaxUnavailable = check.MaxGap(ops, from, until, func(op history.Op) bool { return op.Kind == history.Invoke })
	for i, w := range r.Wrong {
		if i < 5 {
			s.Failf("wrong result: call %d sent %+v, got %+v", w.ID, w.Input, w.Output)
		}
	}
	return r
}
