package fault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/harness"
)

// TestFaults injects every fault into one real cluster and checks the
// effect each must have, then that healing restores a cluster where every
// node follows one leader.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real agents")
	}
	harness.RequireNamespaces(t)
	cfg := harness.DefaultConfig()
	cfg.DataDiskMB = 64
	c := harness.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// leaderMoves checks that once f hit the leader, the other nodes elect
	// one of themselves, and that after Heal every node follows one leader.
	leaderMoves := func(t *testing.T, f interface {
		Fault
		Victims() []*harness.Node
	}) {
		if err := f.Inject(ctx, c); err != nil {
			t.Fatal(err)
		}
		victim := f.Victims()[0]
		next, err := c.WaitLeader(ctx, c.Others(victim)...)
		if err != nil {
			t.Fatalf("%s: the others elected no leader: %v", f.Name(), err)
		}
		t.Logf("%s: %s took over from %s", f.Name(), next, victim)
		if err := f.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("%s healed, cluster not ready: %v", f.Name(), err)
		}
	}

	t.Run("kill", func(t *testing.T) {
		k := &Kill{Target: Leader()}
		leaderMoves(t, k)
		if !k.Victims()[0].Running() {
			t.Fatal("Heal did not restart the victim")
		}
	})
	t.Run("pause", func(t *testing.T) { leaderMoves(t, &Pause{Target: Leader()}) })
	t.Run("partition", func(t *testing.T) {
		p := &Partition{Target: Leader(), Dir: Both}
		if err := p.Inject(ctx, c); err != nil {
			t.Fatal(err)
		}
		isolated := p.Victims()[0]
		// The isolated leader must step down once its lease runs out, and
		// the clients can still ask it.
		if err := harness.Poll(ctx, 100*time.Millisecond, func() error {
			st, err := c.Status(ctx, isolated)
			if err == nil && st.State == "Leader" {
				err = errors.New("still leader")
			}
			return err
		}); err != nil {
			t.Fatalf("isolated %s: %v", isolated, err)
		}
		if err := p.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		leaderMoves(t, &Partition{Target: Leader(), Dir: Both})
	})
	t.Run("loss", func(t *testing.T) {
		l := &Loss{Target: Leader(), P: 0.3}
		if err := l.Inject(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := l.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		l := &Latency{Target: Leader(), Delay: 50 * time.Millisecond}
		err := l.Inject(ctx, c)
		if errors.Is(err, harness.ErrUnsupported) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Heal(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("disk-full", func(t *testing.T) {
		d := &DiskFull{Target: Nodes(c.Nodes()[1])}
		if err := d.Inject(ctx, c); err != nil {
			t.Fatal(err)
		}
		n := d.Victims()[0]
		if free, err := c.DiskFree(n); err != nil || free > 64<<10 {
			t.Fatalf("%s disk after fill: %d bytes free, %v", n, free, err)
		}
		if err := d.Heal(ctx); err != nil {
			t.Fatal(err)
		}
		if free, err := c.DiskFree(n); err != nil || free < 16<<20 {
			t.Fatalf("%s disk after heal: %d bytes free, %v", n, free, err)
		}
		if err := d.Heal(ctx); err != nil {
			t.Fatalf("second Heal: %v", err)
		}
	})
	for _, f := range []Fault{&Kill{Target: Leader()}, &Pause{Target: Leader()}, &Partition{Target: Leader(), Dir: Deaf},
		&Loss{Target: Leader(), P: 0.25}, &Latency{Target: Leader(), Delay: time.Millisecond}, &DiskFull{Target: Leader()}} {
		if err := f.Heal(ctx); err != nil {
			t.Errorf("%s: Heal before Inject: %v", f.Name(), err)
		}
	}
}
