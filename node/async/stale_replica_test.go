package async

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
)

// laggingReplica is the replica of a node that restarted behind the
// cluster: until Sync (a read index) catches it up, it shows the state as
// it was when the node went down.
type laggingReplica struct {
	*memReplica
	mu     sync.Mutex
	behind *fsm.View // nil once caught up
	syncs  int
}

func (r *laggingReplica) View() *fsm.View {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.behind != nil {
		return r.behind
	}
	return r.memReplica.View()
}

func (r *laggingReplica) Sync(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.behind = nil
	r.syncs++
	return nil
}

func (r *laggingReplica) synced() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncs
}

// TestRestartedOwnerDoesNotRedeliverFromAStaleReplica: an owner that
// restarts finds its events pending in its replica, which has not yet
// replayed the outcomes it committed before it went down. It must not
// deliver them again (found by the chaos suite: every restart of a killed
// node re-ran most of the events it had delivered in the seconds before,
// some 440 duplicates in a two-minute run).
func TestRestartedOwnerDoesNotRedeliverFromAStaleReplica(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	release := make(chan struct{})
	h.inv.run = func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return succeed(ctx, req)
	}
	dir := t.TempDir()
	useDir := func(c *Config) { c.Dir = dir }
	n1 := h.node("n1", useDir)
	h.node("n2")
	var ids []string
	for i := range 5 {
		ids = append(ids, h.enqueue(n1, "fn", i))
	}
	// The state as n1's replica will show it after the restart: every
	// event pending.
	before := h.replica.View()
	close(release)
	h.waitDrained(10 * time.Second)

	h.kill("n1")
	lag := &laggingReplica{memReplica: h.replica, behind: before}
	restarted := h.nodeOn("n1", lag, useDir)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if lag.synced() == 0 {
			return fmt.Errorf("the restarted node has not synced its replica")
		}
		restarted.sched.mu.Lock()
		defer restarted.sched.mu.Unlock()
		if n := len(restarted.sched.tasks); n > 0 {
			return fmt.Errorf("the restarted node still holds %d tasks", n)
		}
		return nil
	})
	runs := map[string]int{}
	for _, a := range h.attempts() {
		runs[a.EventID]++
	}
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, runs[id])
		}
	}
}
