package scenario

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/fault"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Kill a random node every 10 s for 2 minutes (restarting the previous
// victim first, so one node at most is down) while clients queue Event
// invocations through every node. Pass: every event answered 202 is
// delivered at least once (duplicates are counted, not failed), and the
// function never sees an event nobody sent. Needs async invocation and
// code replication.
func init() {
	register(Scenario{Name: "async-random-kills", Run: asyncRandomKills})
}

// deliveryWait bounds how long the scenario waits for the queue to drain
// after the load: retries back off to minutes, so give them a few.
const deliveryWait = 4 * time.Minute

func asyncRandomKills(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "async-random-kills", Seed: env.Seed}
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const fn = "chaos-async"
	if err := env.deployChaosFunction(ctx, c.Servers()[0], fn, 0); err != nil {
		t.Fatal(err)
	}
	env.requireCodeReplication(ctx, fn, c.Servers()[0])
	env.requireAsync(ctx, fn, c.Servers()[0])

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	from := env.Rec.Now()
	var wg sync.WaitGroup
	for i, n := range c.Nodes() {
		inv := env.Invoker(i, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for k := 0; k < 1500; k++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				inv.InvokeAsync(context.WithoutCancel(loadCtx), fn, fmt.Sprintf("s%d-c%d-%d", env.Seed, i, k))
			}
		}()
	}

	var last *fault.Kill
	for round := range 12 {
		env.Hold(ctx, 5*time.Second)
		if last != nil {
			if err := last.Heal(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// A restarted server must be back in the quorum before another
		// server may die.
		if err := c.WaitReady(ctx); err != nil {
			s.Failf("round %d: cluster not ready: %v", round, err)
			break
		}
		last = &fault.Kill{Target: fault.Random(env.Rand, nil)}
		if err := last.Inject(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed %s at %.1fs", round, last.Victims()[0], env.Rec.Now().Seconds())
		env.Hold(ctx, 5*time.Second)
	}
	if err := last.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	stopLoad()
	wg.Wait()
	until := env.Rec.Now()

	ops := env.Rec.Ops()
	delivery := regexp.MustCompile(client.DeliveryLine)
	var r check.DeliveryReport
	drainCtx, drainCancel := context.WithTimeout(ctx, deliveryWait)
	defer drainCancel()
	err := harness.Poll(drainCtx, 2*time.Second, func() error {
		lines, err := c.FunctionLogMatches(delivery)
		if err != nil {
			return err
		}
		var seen []string // the load's events, not the probes'
		for _, nonce := range lines {
			if strings.HasPrefix(nonce, fmt.Sprintf("s%d-", env.Seed)) {
				seen = append(seen, nonce)
			}
		}
		r = check.Deliveries(ops, seen)
		if len(r.Lost) > 0 {
			return fmt.Errorf("%d acknowledged events not delivered yet", len(r.Lost))
		}
		return nil
	})
	s.Ops, s.Acked, s.Lost, s.Duplicates = len(history.Filter(ops, func(op history.Op) bool { return op.Kind == history.InvokeAsync })), r.Acked, len(r.Lost), r.Duplicates
	// Unavailability is of acceptance while the load ran, not the wait for
	// the last retries to deliver afterwards.
	s.MaxUnavailable = check.MaxGap(ops, from, until, func(op history.Op) bool { return op.Kind == history.InvokeAsync })
	if err != nil {
		s.Failf("%d of %d acknowledged events lost (waited %v after the load): first %v", len(r.Lost), r.Acked, deliveryWait, r.Lost[:min(5, len(r.Lost))])
	}
	if len(r.Phantoms) > 0 {
		s.Failf("the function saw %d events nobody sent: %v", len(r.Phantoms), r.Phantoms[:min(5, len(r.Phantoms))])
	}
	return s
}
