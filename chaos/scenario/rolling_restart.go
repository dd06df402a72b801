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
// drains), start it, wait until the cluster is ready, put it back. Sync
// load runs throughout. Pass: no wrong result, and every failed call was
// in flight when a node began to stop. Needs code replication.
func init() {
	register(Scenario{Name: "rolling-restart", Run: rollingRestart})
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
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	from := env.Rec.Now()
	load.Start(loadCtx)

	var stops []time.Duration // when each node began to stop
	for _, n := range c.Nodes() {
		env.Hold(ctx, 3*time.Second)
		rot.set(n, false)
		stops = append(stops, env.Rec.Now())
		if err := n.Stop(45 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			s.Failf("cluster not ready after restarting %s: %v", n, err)
			break
		}
		rot.set(n, true)
		t.Logf("restarted %s in %.1fs", n, (env.Rec.Now() - stops[len(stops)-1]).Seconds())
	}
	env.Hold(ctx, 3*time.Second)
	stopLoad()
	load.Wait()
	until := env.Rec.Now()

	ops := env.Rec.Ops()
	syncSummary(&s, ops, from, until)
	inFlightAtAStop := func(op history.Op) bool {
		for _, at := range stops {
			if op.Call <= at && op.Return >= at {
				return true
			}
		}
		return false
	}
	failed := 0
	for _, op := range ops {
		if op.Kind != history.Invoke || op.Outcome == history.OK {
			continue
		}
		if !inFlightAtAStop(op) {
			failed++
			if failed <= 5 {
				s.Failf("call %d through %s failed (%s %s) at %.1fs, not in flight at any stop", op.ID, op.Node, op.Outcome, op.Error, op.Return.Seconds())
			}
		}
	}
	return s
}
