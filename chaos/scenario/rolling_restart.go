package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Restart every node in turn, the way an operator would behind a load
// balancer: take it out of rotation, stop it with SIGTERM (the agent
// drains: a leader hands leadership off, forwarded invocations go
// elsewhere, running ones finish), start it, wait until the cluster is
// ready, put it back. Sync load runs throughout. Pass (issue 9): no wrong
// result, and zero failed invocations beyond those in flight on the
// restarting node: a failed call must have been sent to the node being
// restarted and still be waiting for its answer when the node began to
// stop. No request runs twice.
func init() {
	register(Scenario{Name: "rolling-restart", Smoke: true, Run: rollingRestart})
}

// restartWindow is when one node was being restarted.
type restartWindow struct {
	node         *harness.Node
	stop, exited time.Duration
}

func rollingRestart(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "rolling-restart", Seed: env.Seed}
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const fn = "chaos-rolling"
	if err := env.deployChaosFunction(ctx, c.Servers()[0], fn, 0); err != nil {
		t.Fatal(err)
	}
	env.requireCodeReplication(ctx, fn, c.Servers()[0])

	rot := newRotation(c.Nodes())
	load := &invokeLoad{Function: fn, SleepMS: 50, MaxOps: 5000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	for i := range 6 {
		load.Clients = append(load.Clients, env.balancedCaller(i, rot))
	}
	from, stopLoad := env.startLoad(ctx, load)

	var windows []restartWindow
	for _, n := range c.Nodes() {
		env.Hold(ctx, 3*time.Second)
		rot.set(n, false)
		w := restartWindow{node: n, stop: env.Rec.Now()}
		if err := n.Stop(45 * time.Second); err != nil {
			t.Fatal(err)
		}
		w.exited = env.Rec.Now()
		windows = append(windows, w)
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			s.Failf("cluster not ready after restarting %s: %v", n, err)
			break
		}
		rot.set(n, true)
		t.Logf("restarted %s: stopped in %.1fs, back in rotation after %.1fs", n, (w.exited - w.stop).Seconds(),
			(env.Rec.Now() - w.stop).Seconds())
	}
	env.Hold(ctx, 3*time.Second)
	until := stopLoad()

	ops := env.Rec.Ops()
	syncSummary(&s, ops, from, until)
	onRestartingNode := func(op history.Op) bool {
		for _, w := range windows {
			if op.Node == w.node.ID && op.Call <= w.stop && op.Return >= w.stop {
				return true
			}
		}
		return false
	}
	allowed, failed := 0, 0
	for _, op := range ops {
		if op.Kind != history.Invoke || op.Outcome == history.OK {
			continue
		}
		if onRestartingNode(op) {
			allowed++
			continue
		}
		if failed++; failed <= 5 {
			s.Failf("call %d through %s failed (%s %s %q) at %.1fs, not in flight on a restarting node", op.ID, op.Node, op.Outcome, op.Error, op.Detail, op.Return.Seconds())
		}
	}
	env.checkRanOnce(&s, fn)
	t.Logf("%d failed calls were in flight on a restarting node; %d others failed", allowed, failed)
	return s
}
