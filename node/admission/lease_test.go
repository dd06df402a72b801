package admission

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fixedLimits gives every pool the same limit and MaxRun.
type fixedLimits struct {
	limit  int
	maxRun time.Duration
}

func (f fixedLimits) PoolLimit(Pool) (int, time.Duration, bool) { return f.limit, f.maxRun, true }

// fakeClock is a settable clock shared by a simulation.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// simTransport connects one node to whatever coordinator route returns,
// or fails when route returns nil (partition, no leader, lost message).
type simTransport struct {
	node  string
	clock *fakeClock
	route func(node string) *Coordinator
}

func (s *simTransport) RenewLeases(_ context.Context, holder string, demands []Demand) ([]Grant, error) {
	c := s.route(s.node)
	if c == nil {
		return nil, errors.New("unreachable")
	}
	return c.Renew(holder, demands, s.clock.Now())
}

func testLeaseConfig(node string, clock *fakeClock) LeaseConfig {
	cfg := DefaultLeaseConfig()
	cfg.NodeID = node
	cfg.Now = clock.Now
	return cfg
}

func newSimAdmitter(t testing.TB, node string, clock *fakeClock, route func(string) *Coordinator) *LeaseAdmitter {
	t.Helper()
	l, err := NewLeaseAdmitter(testLeaseConfig(node, clock), &simTransport{node: node, clock: clock, route: route})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func unreserved(account string) Request {
	return Request{AccountID: account, Function: "f", AccountLimit: 50}
}

func TestCoordinatorSharesFairlyAndConverges(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, err := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 50, maxRun: 2 * time.Second}, 1, clock.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pool := Pool{AccountID: "a"}
	held := map[string]Grant{}
	// Three nodes each want 67; node-0 asks first and takes everything,
	// then every renewal moves the shares towards a third each.
	for round := range 6 {
		for i := range 3 {
			node := fmt.Sprintf("node-%d", i)
			g := held[node]
			d := Demand{Pool: pool, Want: 67, Held: g.ID, HeldSlots: g.Slots, HeldRemaining: time.Second}
			grants, err := coord.Renew(node, []Demand{d}, clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			held[node] = grants[0]
			if c := coord.Charged(pool, clock.Now()); c > 50 {
				t.Fatalf("round %d: charged %d > limit 50", round, c)
			}
		}
		clock.Advance(time.Second)
	}
	total := 0
	for node, g := range held {
		if g.Slots < 16 || g.Slots > 17 {
			t.Errorf("%s holds %d slots, want a fair 16-17", node, g.Slots)
		}
		total += g.Slots
	}
	if total > 50 || total < 48 {
		t.Fatalf("slots total %d, want 48-50", total)
	}
}

func TestCoordinatorChargesExpiredLeasesUntilTheirInvocationsEnd(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	const maxRun = 5 * time.Second
	cfg := DefaultCoordinatorConfig()
	coord, _ := NewCoordinator(cfg, fixedLimits{limit: 10, maxRun: maxRun}, 1, clock.Now().Add(-time.Hour))
	pool := Pool{AccountID: "a"}
	g, _ := coord.Renew("dead", []Demand{{Pool: pool, Want: 10}}, clock.Now())
	if g[0].Slots != 10 {
		t.Fatalf("first grant %d slots, want 10", g[0].Slots)
	}
	// "dead" never renews. Until its lease expired and MaxRun passed,
	// its invocations may still run: nobody else gets a slot.
	for _, at := range []time.Duration{time.Second, cfg.LeaseTTL, cfg.LeaseTTL + maxRun - time.Millisecond} {
		got, _ := coord.Renew("alive", []Demand{{Pool: pool, Want: 10}}, clock.Now().Add(at))
		if got[0].Slots != 0 {
			t.Fatalf("at +%v the live node got %d slots while the dead node's may still run", at, got[0].Slots)
		}
	}
	got, _ := coord.Renew("alive", []Demand{{Pool: pool, Want: 10}}, clock.Now().Add(cfg.LeaseTTL+maxRun))
	if got[0].Slots != 10 {
		t.Fatalf("after the dead node's lease and MaxRun passed the live node got %d slots, want 10", got[0].Slots)
	}
}

func TestNewCoordinatorOnlyRegrantsWhatNodesHoldDuringGrace(t *testing.T) {
	const maxRun = 2 * time.Second
	start := time.Unix(1000, 0)
	cfg := DefaultCoordinatorConfig()
	coord, _ := NewCoordinator(cfg, fixedLimits{limit: 50, maxRun: maxRun}, 7, start)
	pool := Pool{AccountID: "a"}
	old := Demand{Pool: pool, Want: 40, Held: GrantID{Epoch: 6, Seq: 99}, HeldSlots: 20, HeldRemaining: time.Second}
	g, _ := coord.Renew("n1", []Demand{old}, start)
	if g[0].Slots != 20 {
		t.Fatalf("grace regrant %d slots, want what n1 held (20)", g[0].Slots)
	}
	fresh := Demand{Pool: pool, Want: 10}
	if g, _ := coord.Renew("n2", []Demand{fresh}, start); g[0].Slots != 0 {
		t.Fatalf("a node holding nothing got %d slots during grace", g[0].Slots)
	}
	after := start.Add(cfg.LeaseTTL + maxRun + cfg.LeaderMargin)
	if g, _ := coord.Renew("n2", []Demand{fresh}, after); g[0].Slots != 10 {
		t.Fatalf("after grace n2 got %d slots, want 10", g[0].Slots)
	}
	stale := Demand{Pool: pool, Held: GrantID{Epoch: 8}}
	if _, err := coord.Renew("n3", []Demand{stale}, after); !errors.Is(err, ErrStaleCoordinator) {
		t.Fatalf("renewal from a node holding a newer epoch: %v", err)
	}
}

func TestLeaseAdmitterAdmitsWithinGrantAndStopsWhenItLapses(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 3, maxRun: time.Second}, 1, clock.Now().Add(-time.Hour))
	reachable := true
	l := newSimAdmitter(t, "n1", clock, func(string) *Coordinator {
		if reachable {
			return coord
		}
		return nil
	})
	ctx := context.Background()
	var rels []func()
	for i := range 3 {
		rel, err := l.Admit(ctx, unreserved("a"))
		if err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
		rels = append(rels, rel)
	}
	var te *ThrottleError
	if _, err := l.Admit(ctx, unreserved("a")); !errors.As(err, &te) || te.Reason != ReasonAccount {
		t.Fatalf("4th admit over a limit of 3: %v", err)
	}
	rels[0]()
	if _, err := l.Admit(ctx, unreserved("a")); err != nil {
		t.Fatalf("admit after a release: %v", err)
	}
	// Partitioned from the coordinator: the lease lapses and the node
	// stops admitting even though slots are free locally.
	reachable = false
	rels[1]()
	rels[2]()
	clock.Advance(DefaultCoordinatorConfig().LeaseTTL)
	_ = l.Renew(ctx)
	if _, err := l.Admit(ctx, unreserved("a")); !errors.As(err, &te) || te.Cause == "" {
		t.Fatalf("admit with a lapsed lease: %v, want a throttle that says why", err)
	}
	if _, err := l.Admit(ctx, Request{AccountID: "a", Function: "z", Reserved: new(int32)}); !errors.As(err, &te) || te.Reason != ReasonReserved {
		t.Fatalf("reserved 0: %v, want a reserved throttle", err)
	}
}

// TestLeasesNeverExceedTheLimit simulates nodes admitting invocations of
// random length (at most MaxRun) against one pool while renewals are lost,
// nodes are partitioned from the coordinator or crash and restart, and the
// coordinator is replaced by a new epoch whose predecessor goes on granting
// for a while. At every step the invocations actually running, counted
// from the invocations' side, stay within the limit.
func TestLeasesNeverExceedTheLimit(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { simulateLeases(t, uint64(seed)) })
	}
}

func simulateLeases(t *testing.T, seed uint64) {
	const (
		limit  = 50
		maxRun = 2 * time.Second
		step   = 20 * time.Millisecond
		steps  = 2500 // 50 s
		nodes  = 4
	)
	rng := rand.New(rand.NewPCG(seed, 42))
	clock := &fakeClock{t: time.Unix(1000, 0)}
	limits := fixedLimits{limit: limit, maxRun: maxRun}
	ccfg := DefaultCoordinatorConfig()
	epoch := uint64(1)
	current, _ := NewCoordinator(ccfg, limits, epoch, clock.Now())
	var deposed *Coordinator
	var deposedUntil time.Time
	partitioned := map[string]time.Time{}
	route := func(node string) *Coordinator {
		now := clock.Now()
		if now.Before(partitioned[node]) || rng.IntN(10) == 0 { // partition, or a lost message
			return nil
		}
		if deposed != nil && now.Before(deposedUntil) && rng.IntN(2) == 0 {
			return deposed
		}
		return current
	}
	type running struct {
		node string
		end  time.Time
		rel  func()
	}
	var runs []running
	admitters := map[string]*LeaseAdmitter{}
	for i := range nodes {
		id := fmt.Sprint("n", i)
		admitters[id] = newSimAdmitter(t, id, clock, route)
	}
	renewPhase := map[string]int{}
	ctx := context.Background()
	peak := 0
	for s := range steps {
		now := clock.Now()
		switch r := rng.IntN(1000); {
		case r < 2: // a node is partitioned from the coordinator for up to 6 s
			partitioned[fmt.Sprint("n", rng.IntN(nodes))] = now.Add(time.Duration(rng.IntN(6000)) * time.Millisecond)
		case r < 3: // a node crashes and restarts: its admitter state is gone,
			// but (worst case) its invocations run on to their end
			id := fmt.Sprint("n", rng.IntN(nodes))
			admitters[id] = newSimAdmitter(t, id, clock, route)
		case r < 4: // a new leader: the old coordinator grants a little longer
			deposed, deposedUntil = current, now.Add(ccfg.LeaderMargin)
			epoch++
			current, _ = NewCoordinator(ccfg, limits, epoch, now)
		}
		// Demand changes in phases so shares have to move between nodes.
		for i := range nodes {
			id := fmt.Sprint("n", i)
			l := admitters[id]
			if (s/250+i)%3 == 0 {
				continue // this node is quiet in this phase
			}
			for range rng.IntN(4) {
				rel, err := l.Admit(ctx, unreserved("a"))
				if err != nil {
					continue
				}
				d := time.Duration(1+rng.IntN(int(maxRun/time.Millisecond))) * time.Millisecond
				runs = append(runs, running{node: id, end: now.Add(d), rel: rel})
			}
			if renewPhase[id]++; renewPhase[id]%50 == 0 { // every second
				_ = l.Renew(ctx)
			}
		}
		if len(runs) > limit {
			t.Fatalf("step %d: %d invocations running, limit %d", s, len(runs), limit)
		}
		peak = max(peak, len(runs))
		clock.Advance(step)
		now = clock.Now()
		kept := runs[:0]
		for _, r := range runs {
			if now.Before(r.end) {
				kept = append(kept, r)
			} else {
				r.rel()
			}
		}
		runs = kept
	}
	if peak < limit/2 {
		t.Fatalf("peak concurrency %d: the leases never let the pool fill (limit %d)", peak, limit)
	}
	t.Logf("peak concurrency %d of %d", peak, limit)
}

func TestLeaseAdmitterBurstWaitsForOneSharedRenewal(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 100, maxRun: time.Second}, 1, clock.Now().Add(-time.Hour))
	var n int
	var mu sync.Mutex
	l := newSimAdmitter(t, "n1", clock, func(string) *Coordinator {
		mu.Lock()
		n++
		mu.Unlock()
		return coord
	})
	var wg sync.WaitGroup
	var admitted, throttled int
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Admit(context.Background(), unreserved("a"))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				admitted++
			} else {
				throttled++
			}
		}()
	}
	wg.Wait()
	if admitted+throttled != 40 || admitted == 0 {
		t.Fatalf("admitted %d, throttled %d", admitted, throttled)
	}
	mu.Lock()
	defer mu.Unlock()
	if n >= 40 {
		t.Fatalf("%d renewals for 40 admissions: renewals are not shared", n)
	}
	t.Logf("40 concurrent first admissions: %d admitted with %d renewals", admitted, n)
}
