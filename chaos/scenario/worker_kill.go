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

// Kill (SIGKILL) the worker that holds a function's warm sandboxes, its
// home on the ring, during steady sync invoke load sent through the
// servers. Pass (issue 9): no wrong result, ever; the success rate back to
// 100% from gossip's detection of the death + 2 s on; the calls in flight
// on the victim fail cleanly: an error answer, not a hang until the
// client gives up, and no request run twice (a forward that broke after
// the victim may have started the function is never retried elsewhere).
func init() {
	register(Scenario{Name: "worker-kill", Smoke: true, Run: workerKill})
}

// recoveryAfterDetection is issue 9's bound: 100% success from gossip's
// detection of the death + 2 s.
const recoveryAfterDetection = 2 * time.Second

func workerKill(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "worker-kill", Seed: env.Seed}
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	front := c.Servers()
	fn, victim := env.deployOnWorker(ctx, front[0], "chaos-sync", 0)

	load := &invokeLoad{Clients: env.invokersOver(front, 2*len(front)), Function: fn, SleepMS: 20, MaxOps: 2000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	from, stopLoad := env.startLoad(ctx, load)
	env.holdBeforeFault(ctx)

	ranOnVictim := 0
	for _, op := range env.Rec.Ops() {
		if out, ok := op.Output.(history.InvokeOutput); ok && op.Outcome == history.OK && out.Node == victim.ID {
			ranOnVictim++
		}
	}
	if ranOnVictim == 0 {
		t.Fatalf("no invocation ran on %s, the function's home, before the kill", victim)
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
	t.Logf("killed %s (home of %s, %d calls ran there) at %.1fs; declared dead after %.1fs", victim, fn, ranOnVictim,
		killedAt.Seconds(), (detectedAt - killedAt).Seconds())
	env.Hold(ctx, max(killedAt+15*time.Second, detectedAt+5*time.Second)-env.Rec.Now())
	until := stopLoad()

	ops := env.Rec.Ops()
	r := syncSummary(&s, ops, from, until)
	recovered, err := r.RecoveredBy()
	switch {
	case err != nil:
		s.Failf("success rate never returned to 100%%: %v", err)
	case recovered > detectedAt+recoveryAfterDetection+time.Second: // +1 s of bucket granularity
		s.Failf("success rate back to 100%% only from %.1fs; death detected at %.1fs", recovered.Seconds(), detectedAt.Seconds())
	}
	inFlight, failed := 0, 0
	for _, op := range ops {
		if op.Kind != history.Invoke || op.Call >= killedAt || op.Return <= killedAt {
			continue
		}
		inFlight++
		if op.Outcome != history.OK {
			failed++
		}
		if op.Outcome == history.Unknown && op.Error == "timeout" {
			s.Failf("call %d in flight at the kill hung until the client's timeout", op.ID)
		}
	}
	env.checkRanOnce(&s, fn)
	t.Logf("%d calls in flight at the kill, %d of them failed; success back to 100%% from %.1fs (detection %.1fs)",
		inFlight, failed, recovered.Seconds(), detectedAt.Seconds())
	return s
}
