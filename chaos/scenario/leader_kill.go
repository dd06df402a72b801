package scenario

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/fault"
	"github.com/stokehq/stoke/chaos/harness"
)

// Kill the Raft leader during a stream of control-plane writes. Pass:
// every acknowledged write is readable on both survivors within 10 s, none
// is lost, the history is linearizable, and after the victim restarts all
// three replicas hold the same state.
func init() {
	register(Scenario{Name: "leader-kill", Smoke: true, Run: leaderKill})
}

func leaderKill(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "leader-kill", Seed: env.Seed}
	c := env.Start(harness.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	load := newControlLoad(env, c, 2)
	if err := load.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	from, stopLoad := env.startLoad(ctx, load)

	env.holdBeforeFault(ctx)
	kill := &fault.Kill{Target: fault.Leader()}
	if err := kill.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	victim := kill.Victims()[0]
	survivors := c.Others(victim)
	killedAt := env.Rec.Now()
	next, err := c.WaitLeader(ctx, survivors...)
	if err != nil {
		s.Failf("survivors elected no leader: %v", err)
	} else {
		t.Logf("%s killed at %.1fs; %s leads after %.1fs", victim, killedAt.Seconds(), next, (env.Rec.Now() - killedAt).Seconds())
	}
	env.Hold(ctx, 6*time.Second)
	until := stopLoad()

	v := verdict{env: env, c: c, fns: load.Functions, load: env.Rec.Ops(), loadFrom: from, loadUntil: until}
	v.judge(&s, survivors)

	if err := kill.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	if err := waitConverged(cctx, env.Admin(), c.Nodes()); err != nil {
		s.Failf("replicas did not converge after %s restarted: %v", victim, err)
	}
	t.Logf("outcomes:%s", errorCounts(v.load))
	return s
}

// newControlLoad builds the control-plane load of the leader scenarios:
// perNode clients on every node, four functions, paced at 20 ops/s per
// client and bounded to 2000 ops each.
func newControlLoad(env *Env, c *harness.Cluster, perNode int) *controlLoad {
	l := &controlLoad{MaxOps: 2000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	for i := range 4 {
		l.Functions = append(l.Functions, fmt.Sprintf("chaos-%d", i))
	}
	id := 0
	for range perNode {
		for _, n := range c.Nodes() {
			l.Clients = append(l.Clients, env.Control(id, n))
			id++
		}
	}
	return l
}
