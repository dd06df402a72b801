package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/fault"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Kill the worker running a function's sandboxes during steady sync
// invoke load sent through the servers. Pass: no wrong result; success
// back to 100% from gossip's detection of the death + 2 s on; calls in
// flight on the victim fail cleanly (an error answer, not a hang until
// the client gives up). Needs code replication and placement routing.
func init() {
	register(Scenario{Name: "worker-kill", Run: workerKill})
}

func workerKill(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "worker-kill", Seed: env.Seed}
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const fn = "chaos-sync"
	front := c.Servers()
	if err := env.deployChaosFunction(ctx, front[0], fn, 0); err != nil {
		t.Fatal(err)
	}
	env.requireCodeReplication(ctx, fn, front[0])
	env.requirePlacement(ctx, fn)

	load := &invokeLoad{Function: fn, SleepMS: 20, MaxOps: 2000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	for i := range 2 * len(front) {
		load.Clients = append(load.Clients, env.Invoker(i, front[i%len(front)]))
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	from := env.Rec.Now()
	load.Start(loadCtx)
	env.Hold(ctx, time.Duration(4000+env.Rand.IntN(2000))*time.Millisecond)

	isWorker := func(n *harness.Node) bool { return !n.Server }
	victim := busiest(c, env.Rec.Ops(), isWorker)
	if victim == nil {
		t.Fatal("no invocation succeeded before the kill")
	}
	kill := &fault.Kill{Target: fault.Nodes(victim)}
	if err := kill.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	killedAt := env.Rec.Now()
	detectedAt, err := env.waitDeclared(ctx, front[0], victim, "dead")
	if err != nil {
		s.Failf("gossip never declared %s dead: %v", victim, err)
	}
	t.Logf("killed %s at %.1fs; declared dead after %.1fs", victim, killedAt.Seconds(), (detectedAt - killedAt).Seconds())
	env.Hold(ctx, killedAt+15*time.Second-env.Rec.Now())
	stopLoad()
	load.Wait()
	until := env.Rec.Now()

	ops := env.Rec.Ops()
	r := syncSummary(&s, ops, from, until)
	recovered, err := r.RecoveredBy()
	switch {
	case err != nil:
		s.Failf("success rate never returned to 100%%: %v", err)
	case recovered > detectedAt+3*time.Second: // +2 s, +1 s of bucket granularity
		s.Failf("success rate back to 100%% only from %.1fs; death detected at %.1fs", recovered.Seconds(), detectedAt.Seconds())
	}
	for _, op := range ops {
		if op.Kind == history.Invoke && op.Call < killedAt && op.Return > killedAt && op.Outcome == history.Unknown && op.Error == "timeout" {
			s.Failf("call %d in flight at the kill hung until the client's timeout", op.ID)
		}
	}
	return s
}
