package scenario

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/fault"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// leaseGrace bounds how long after being cut off a leader may still
// acknowledge a write: nothing can commit without a quorum, so only a
// write committed just before the cut can be answered after it. It is
// generous against scheduling delays on a loaded machine and well below
// the election the rest of the cluster holds.
const leaseGrace = time.Second

// Partition the Raft leader away from the other servers, both ways, while
// clients keep writing through every node, the isolated one included.
// Pass: the isolated node acknowledges no write after leaseGrace and steps
// down; the majority elects a leader and acknowledges writes; after the
// heal every acknowledged write is readable everywhere within 10 s, none
// is lost, the history is linearizable and the replicas converge.
func init() {
	register(Scenario{Name: "leader-partition", Smoke: true, Run: leaderPartition})
}

func leaderPartition(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "leader-partition", Seed: env.Seed}
	harness.RequireNamespaces(env)
	c := env.Start(harness.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	load := newControlLoad(env, c, 2)
	if err := load.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	from, stopLoad := env.startLoad(ctx, load)

	env.holdBeforeFault(ctx)
	part := &fault.Partition{Target: fault.Leader(), Dir: fault.Both}
	if err := part.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	cutAt := env.Rec.Now()
	isolated := part.Victims()[0]
	majority := c.Others(isolated)
	next, err := c.WaitLeader(ctx, majority...)
	if err != nil {
		s.Failf("the majority elected no leader: %v", err)
	} else {
		t.Logf("%s cut off at %.1fs; %s leads the majority after %.1fs", isolated, cutAt.Seconds(), next, (env.Rec.Now() - cutAt).Seconds())
	}
	if err := harness.Poll(ctx, 100*time.Millisecond, func() error {
		st, err := c.Status(ctx, isolated)
		if err == nil && st.State == "Leader" {
			return errors.New("still leader")
		}
		return err
	}); err != nil {
		s.Failf("isolated %s did not step down: %v", isolated, err)
	} else {
		t.Logf("%s stepped down after %.1fs", isolated, (env.Rec.Now() - cutAt).Seconds())
	}
	env.Hold(ctx, 8*time.Second)
	healAt := env.Rec.Now()
	if err := part.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		s.Failf("cluster not ready after the heal: %v", err)
	}
	env.Hold(ctx, 3*time.Second)
	until := stopLoad()
	ops := env.Rec.Ops()

	// The isolated node acknowledges nothing once its lease is over, and
	// the majority keeps acknowledging writes meanwhile.
	majorityAcks := 0
	for _, op := range ops {
		if !check.IsWrite(op) || op.Outcome != history.OK || op.Return < cutAt+leaseGrace || op.Return > healAt {
			continue
		}
		if op.Node == isolated.ID {
			s.Failf("isolated %s acknowledged %s(%s) %.1fs after the cut", isolated, op.Kind, op.Key, (op.Return - cutAt).Seconds())
		} else {
			majorityAcks++
		}
	}
	if majorityAcks == 0 {
		s.Failf("the majority acknowledged no write during the partition")
	}
	onMajority := func(op history.Op) bool { return check.IsWrite(op) && op.Node != isolated.ID }
	t.Logf("majority: %d writes acknowledged during the partition, longest gap %.1fs", majorityAcks,
		check.MaxGap(ops, cutAt, healAt, onMajority).Seconds())

	v := verdict{env: env, c: c, fns: load.Functions, load: ops, loadFrom: from, loadUntil: until}
	v.judge(&s, c.Nodes())
	// Unavailability as the majority's clients saw it: the isolated node's
	// clients cannot be served by design until the heal.
	s.MaxUnavailable = check.MaxGap(ops, from, until, onMajority)

	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	if err := waitConverged(cctx, env.Admin(), c.Nodes()); err != nil {
		s.Failf("replicas did not converge after the heal: %v", err)
	}
	t.Logf("outcomes:%s", errorCounts(ops))
	return s
}
