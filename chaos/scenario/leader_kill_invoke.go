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

// Kill the Raft leader while clients invoke a function through a follower,
// beyond its reserved concurrency. The invoke path reads the follower's
// own replica and admits locally, so it must not notice: every call
// succeeds or is throttled (429), no result is ever another call's, and
// the executions the function itself saw never overlap more than the
// reserved concurrency. Not one of issue 9's list; it checks the
// data-plane recording, sync and concurrency checkers against the real
// agent until placement, code replication and async let the list's
// data-plane scenarios run.
func init() {
	register(Scenario{Name: "leader-kill-invoke", Smoke: false, Run: leaderKillInvoke})
}

const invokeReserved = 3

func leaderKillInvoke(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "leader-kill-invoke", Seed: env.Seed, Duplicates: -1}
	c := env.Start(harness.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	front := without(c.Nodes(), leader)[env.Rand.IntN(2)]
	const fn = "chaos-invoke"
	if err := env.deployChaosFunction(ctx, front, fn, invokeReserved); err != nil {
		t.Fatal(err)
	}

	load := &invokeLoad{Function: fn, SleepMS: 100, MaxOps: 400, Seed: env.Seed}
	for i := range 2 * invokeReserved {
		load.Clients = append(load.Clients, env.Invoker(i, front))
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	from := env.Rec.Now()
	load.Start(loadCtx)
	env.Hold(ctx, time.Duration(3000+env.Rand.IntN(2000))*time.Millisecond)
	kill := &fault.Kill{Target: fault.Leader()}
	if err := kill.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed leader %s at %.1fs; invoking through %s", leader, env.Rec.Now().Seconds(), front)
	env.Hold(ctx, 8*time.Second)
	stopLoad()
	load.Wait()
	until := env.Rec.Now()
	if err := kill.Heal(ctx); err != nil {
		t.Fatal(err)
	}

	ops := env.Rec.Ops()
	r := check.SyncInvocations(ops, time.Second)
	s.Ops, s.Acked, s.Lost = r.Calls, r.OKs, len(r.Wrong)
	s.MaxUnavailable = check.MaxGap(ops, from, until, func(op history.Op) bool { return op.Kind == history.Invoke })
	for _, w := range r.Wrong {
		s.Failf("wrong result: call %d sent %+v, got %+v", w.ID, w.Input, w.Output)
	}
	if other := r.Calls - r.OKs - r.Throttled; other > 0 {
		s.Failf("%d calls neither succeeded nor were throttled:%s", other, errorCounts(history.Filter(ops, func(op history.Op) bool {
			return op.Kind == history.Invoke && op.Error != check.ErrThrottled
		})))
	}
	if r.OKs == 0 {
		s.Failf("no invocation succeeded")
	}
	peak, at := check.MaxOverlap(check.Executions(ops))
	if peak > invokeReserved {
		s.Failf("%d executions overlapped at %d (unix ns); reserved concurrency is %d", peak, at, invokeReserved)
	}
	t.Logf("%d calls: %d ok, %d throttled; peak overlap %d of %d reserved", r.Calls, r.OKs, r.Throttled, peak, invokeReserved)
	return s
}
