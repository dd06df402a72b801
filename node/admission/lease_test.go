package admission

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedLimits gives every pool the same limit and MaxRun.
type fixedLimits struct {
	limit  int
	maxRun time.Duration
	nodes  []string
}

func (f fixedLimits) PoolLimit(Pool) (int, time.Duration, bool) { return f.limit, f.maxRun, true }
func (f fixedLimits) HolderNodes() []string                     { return f.nodes }
func (f fixedLimits) AccountLimit(string) int                   { return f.limit }

// memCeilings commits proposals at once, as a Raft that never fails would,
// refusing those of an epoch older than the committed one or than
// deposedBelow (a deposed leader cannot commit).
type memCeilings struct {
	mu           sync.Mutex
	m            map[string][2]uint64 // account -> ceiling, epoch
	deposedBelow uint64
	proposals    int
}

// ceilingsAt returns ceilings with every account's ceiling at c, set by
// epoch.
func ceilingsAt(c int, epoch uint64) *memCeilings {
	return &memCeilings{m: map[string][2]uint64{"a": {uint64(c), epoch}}}
}

func (m *memCeilings) Ceiling(a string) (int, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.m[a]
	return int(r[0]), r[1]
}

func (m *memCeilings) Propose(a string, c int, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proposals++
	if epoch < m.deposedBelow || epoch < m.m[a][1] {
		return
	}
	if m.m == nil {
		m.m = map[string][2]uint64{}
	}
	m.m[a] = [2]uint64{uint64(c), epoch}
}

// renewal is a full renewal by node (one incarnation, clean start).
func renewal(node string, demands ...Demand) Renewal {
	return Renewal{Holder: Holder{Node: node, Incarnation: "i", CleanStart: true}, Full: true, Demands: demands}
}

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

func (s *simTransport) RenewLeases(_ context.Context, r Renewal) ([]Grant, error) {
	c := s.route(s.node)
	if c == nil {
		return nil, errors.New("unreachable")
	}
	return c.Renew(r, s.clock.Now())
}

func testLeaseConfig(node string, clock *fakeClock, clean bool) LeaseConfig {
	cfg := DefaultLeaseConfig()
	cfg.NodeID, cfg.CleanStart = node, clean
	cfg.Now = clock.Now
	// The simulation's time only moves between steps: a wait ends at once.
	cfg.After = func(time.Duration) <-chan time.Time {
		ch := make(chan time.Time, 1)
		ch <- clock.Now()
		return ch
	}
	return cfg
}

func newSimAdmitter(t testing.TB, node string, clock *fakeClock, route func(string) *Coordinator) *LeaseAdmitter {
	return newSimAdmitterLife(t, node, clock, route, true)
}

// newSimAdmitterLife starts an admitter; clean is false for a node that
// restarted after a crash.
func newSimAdmitterLife(t testing.TB, node string, clock *fakeClock, route func(string) *Coordinator, clean bool) *LeaseAdmitter {
	t.Helper()
	l, err := NewLeaseAdmitter(testLeaseConfig(node, clock, clean), &simTransport{node: node, clock: clock, route: route})
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
	coord, err := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 50, maxRun: 2 * time.Second}, ceilingsAt(50, 1), 1, clock.Now().Add(-time.Hour))
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
			grants, err := coord.Renew(renewal(node, d), clock.Now())
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
	coord, _ := NewCoordinator(cfg, fixedLimits{limit: 10, maxRun: maxRun}, ceilingsAt(10, 1), 1, clock.Now().Add(-time.Hour))
	pool := Pool{AccountID: "a"}
	g, _ := coord.Renew(renewal("dead", Demand{Pool: pool, Want: 10}), clock.Now())
	if g[0].Slots != 10 {
		t.Fatalf("first grant %d slots, want 10", g[0].Slots)
	}
	// "dead" never renews. Until its lease expired and MaxRun passed,
	// its invocations may still run: nobody else gets a slot.
	for _, at := range []time.Duration{time.Second, cfg.LeaseTTL, cfg.LeaseTTL + maxRun - time.Millisecond} {
		got, _ := coord.Renew(renewal("alive", Demand{Pool: pool, Want: 10}), clock.Now().Add(at))
		if got[0].Slots != 0 {
			t.Fatalf("at +%v the live node got %d slots while the dead node's may still run", at, got[0].Slots)
		}
	}
	got, _ := coord.Renew(renewal("alive", Demand{Pool: pool, Want: 10}), clock.Now().Add(cfg.LeaseTTL+maxRun))
	if got[0].Slots != 10 {
		t.Fatalf("after the dead node's lease and MaxRun passed the live node got %d slots, want 10", got[0].Slots)
	}
}

// TestNewCoordinatorKeepsWhatItCannotAccountFor: the predecessor's
// ceiling (45 of a limit of 50) bounds what it may have granted; a node
// reports holding 20 of it, so until every node has reported, 25 count as
// held by holders not heard from and only 5 are free for a new node.
func TestNewCoordinatorKeepsWhatItCannotAccountFor(t *testing.T) {
	const maxRun = 2 * time.Second
	start := time.Unix(1000, 0)
	cfg := DefaultCoordinatorConfig()
	ceilings := ceilingsAt(45, 6)
	coord, _ := NewCoordinator(cfg, fixedLimits{limit: 50, maxRun: maxRun, nodes: []string{"n1", "n2", "n3"}}, ceilings, 7, start)
	pool := Pool{AccountID: "a"}
	old := Demand{Pool: pool, Want: 20, Held: GrantID{Epoch: 6, Seq: 99}, HeldSlots: 20, HeldRemaining: time.Second}
	if g, _ := coord.Renew(renewal("n1", old), start); g[0].Slots != 20 {
		t.Fatalf("n1 renewed %d slots, want the 20 it held", g[0].Slots)
	}
	fresh := Demand{Pool: pool, Want: 10}
	renewN2 := func(at time.Time) Grant {
		t.Helper()
		g, err := coord.Renew(renewal("n2", fresh), at)
		if err != nil {
			t.Fatal(err)
		}
		return g[0]
	}
	// The first ask may only raise the ceiling; the next one is granted.
	renewN2(start)
	if g := renewN2(start); g.Slots != 5 || !g.Retry {
		t.Fatalf("n2 got %d slots (retry %v) while 25 may be out with silent nodes, want 5", g.Slots, g.Retry)
	}
	// n3 restarted after a crash 1 s ago: its previous life's invocations
	// may run for another second, so its report does not end the grace.
	restarted := Renewal{Holder: Holder{Node: "n3", Incarnation: "new", Age: time.Second}, Full: true}
	if _, err := coord.Renew(restarted, start); err != nil {
		t.Fatal(err)
	}
	if g := renewN2(start); g.Slots != 5 {
		t.Fatalf("n2 got %d slots while n3's previous life may still run invocations, want 5", g.Slots)
	}
	// Once n3's incarnation is MaxRun old, every node is accounted for.
	renewN2(start.Add(time.Second))
	if g := renewN2(start.Add(time.Second)); g.Slots != 10 {
		t.Fatalf("with every node accounted for n2 got %d slots, want 10", g.Slots)
	}
	stale := Demand{Pool: pool, Held: GrantID{Epoch: 8}}
	if _, err := coord.Renew(renewal("n3", stale), start); !errors.Is(err, ErrStaleCoordinator) {
		t.Fatalf("renewal from a node holding a newer epoch: %v", err)
	}
}

func TestGraceEndsAfterItsLongestTerm(t *testing.T) {
	const maxRun = 2 * time.Second
	start := time.Unix(1000, 0)
	cfg := DefaultCoordinatorConfig()
	coord, _ := NewCoordinator(cfg, fixedLimits{limit: 50, maxRun: maxRun, nodes: []string{"n1", "silent"}}, ceilingsAt(50, 6), 7, start)
	fresh := Demand{Pool: Pool{AccountID: "a"}, Want: 10}
	if g, _ := coord.Renew(renewal("n1", fresh), start); g[0].Slots != 0 || !g[0].Retry {
		t.Fatalf("got %d slots while a silent node may hold the whole limit", g[0].Slots)
	}
	end := start.Add(cfg.LeaseTTL + maxRun + cfg.LeaderMargin)
	if g, _ := coord.Renew(renewal("n1", fresh), end); g[0].Slots != 10 {
		t.Fatalf("after the longest grace n1 got %d slots, want 10", g[0].Slots)
	}
}

// TestCeilingIsRaisedBeforeAndLoweredAfter: grants never exceed the
// committed ceiling; the coordinator raises it (with headroom) when
// demand needs it and lowers it when demand falls.
func TestCeilingIsRaisedBeforeAndLoweredAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	ceilings := &memCeilings{}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 100, maxRun: time.Second}, ceilings, 1, now.Add(-time.Hour))
	pool := Pool{AccountID: "a"}
	g, _ := coord.Renew(renewal("n1", Demand{Pool: pool, Want: 30}), now)
	if g[0].Slots != 0 || !g[0].Retry {
		t.Fatalf("first grant %d slots (retry %v) under a ceiling of 0", g[0].Slots, g[0].Retry)
	}
	if c, _ := ceilings.Ceiling("a"); c != 40 {
		t.Fatalf("ceiling raised to %d, want 30 + a tenth of the limit = 40", c)
	}
	g, _ = coord.Renew(renewal("n1", Demand{Pool: pool, Want: 30, Held: g[0].ID, HeldRemaining: time.Second}), now)
	if g[0].Slots != 30 {
		t.Fatalf("grant after the raise: %d slots, want 30", g[0].Slots)
	}
	// Demand falls to 2; once the 30-slot grant is no longer charged, the
	// ceiling comes down to what is charged plus headroom.
	later := now.Add(5 * time.Second)
	g, _ = coord.Renew(renewal("n1", Demand{Pool: pool, Want: 2, Held: g[0].ID, HeldRemaining: time.Second}), later)
	g, _ = coord.Renew(renewal("n1", Demand{Pool: pool, Want: 2, Held: g[0].ID, HeldRemaining: time.Second}), later)
	if c, _ := ceilings.Ceiling("a"); c != 12 || g[0].Slots != 2 {
		t.Fatalf("ceiling %d and grant %d after demand fell, want 12 and 2", c, g[0].Slots)
	}
	if c := coord.Charged(pool, later); c > 12 {
		t.Fatalf("charged %d above the ceiling", c)
	}
}

func TestLeaseAdmitterAdmitsWithinGrantAndStopsWhenItLapses(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 3, maxRun: time.Second}, ceilingsAt(3, 1), 1, clock.Now().Add(-time.Hour))
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
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { simulateLeases(t, uint64(seed), false) })
	}
}

// TestFallbackNeverExceedsTheLimit is the same simulation with every node
// falling back to its fair share when it is cut off from the coordinator
// (partitions of up to 6 s, lost renewals, crashes), and one coordinator:
// the coordinator charges a silent node its share, so the limit holds.
// (A node cut off across a leader change may admit its share above what
// the new coordinator accounts for; docs/architecture.md states it.)
func TestFallbackNeverExceedsTheLimit(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { simulateLeases(t, uint64(seed), true) })
	}
}

// simulateLeases runs the simulation; fallback turns on the nodes'
// fair-share fallback and leaves out leader changes.
func simulateLeases(t *testing.T, seed uint64, fallback bool) {
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
	for i := range nodes {
		limits.nodes = append(limits.nodes, fmt.Sprint("n", i))
	}
	ccfg := DefaultCoordinatorConfig()
	epoch := uint64(1)
	ceilings := &memCeilings{}
	current, _ := NewCoordinator(ccfg, limits, ceilings, epoch, clock.Now())
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
	// The simulation's waits take no time, so an Admit's rounds would all
	// happen at one instant: one renewal each is as realistic and cheaper.
	newAdmitter := func(id string, clean bool) *LeaseAdmitter {
		cfg := testLeaseConfig(id, clock, clean)
		cfg.MaxSyncRounds = 1
		if fallback {
			cfg.FairShareNodes = func() int { return nodes }
		}
		l, err := NewLeaseAdmitter(cfg, &simTransport{node: id, clock: clock, route: route})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for i := range nodes {
		id := fmt.Sprint("n", i)
		admitters[id] = newAdmitter(id, true)
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
			admitters[id] = newAdmitter(id, false)
		case r < 4 && !fallback: // a new leader: the old coordinator grants a little longer
			deposed, deposedUntil = current, now.Add(ccfg.LeaderMargin)
			epoch++
			ceilings.mu.Lock()
			ceilings.deposedBelow = epoch
			ceilings.mu.Unlock()
			current, _ = NewCoordinator(ccfg, limits, ceilings, epoch, now)
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
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 100, maxRun: time.Second}, &memCeilings{}, 1, clock.Now().Add(-time.Hour))
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

// accountLimits: account "a" has limit 50, function "r" reserves 20.
type accountLimits struct{}

func (accountLimits) PoolLimit(p Pool) (int, time.Duration, bool) {
	if p.Function == "r" {
		return 20, time.Second, true
	}
	return 30, time.Second, true
}
func (accountLimits) AccountLimit(string) int { return 50 }
func (accountLimits) HolderNodes() []string   { return nil }

// TestReservationWaitsForTheAccountToDrain: slices of the unreserved pool
// granted before a reservation existed are not revoked; the reserved pool
// is granted only what the account limit leaves, and gets its share once
// the unreserved slices were renewed smaller.
func TestReservationWaitsForTheAccountToDrain(t *testing.T) {
	now := time.Unix(1000, 0)
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), accountLimits{}, ceilingsAt(50, 1), 1, now.Add(-time.Hour))
	unres, resv := Pool{AccountID: "a"}, Pool{AccountID: "a", Function: "r"}
	// Granted while the unreserved pool was 50 (a 50-slot lease, as a
	// coordinator that saw no reservation gave).
	coord.mu.Lock()
	coord.pools[unres] = map[string]*holder{"n1/i": {want: 50, reported: now, grants: []issued{{seq: 1, slots: 50, expiry: now.Add(3 * time.Second)}}}}
	coord.seq = 1
	coord.mu.Unlock()
	g, _ := coord.Renew(renewal("n2", Demand{Pool: resv, Want: 20}), now)
	if g[0].Slots != 0 {
		t.Fatalf("reserved pool got %d slots while the account's 50 are leased to the unreserved pool", g[0].Slots)
	}
	// n1 renews: its slice shrinks to the new unreserved limit (30), and
	// once it holds that grant the reservation gets its 20.
	g, _ = coord.Renew(renewal("n1", Demand{Pool: unres, Want: 50, Held: GrantID{1, 1}, HeldSlots: 50, HeldRemaining: time.Second}), now)
	if g[0].Slots != 30 {
		t.Fatalf("unreserved slice renewed to %d, want 30", g[0].Slots)
	}
	if _, err := coord.Renew(renewal("n1", Demand{Pool: unres, Want: 50, Held: g[0].ID, HeldSlots: 30, HeldRemaining: time.Second}), now); err != nil {
		t.Fatal(err)
	}
	// (The first ask may have to raise the account's ceiling again.)
	if _, err := coord.Renew(renewal("n2", Demand{Pool: resv, Want: 20}), now); err != nil {
		t.Fatal(err)
	}
	if g, _ := coord.Renew(renewal("n2", Demand{Pool: resv, Want: 20}), now); g[0].Slots != 20 {
		t.Fatalf("reserved pool got %d slots after the unreserved slices shrank, want 20", g[0].Slots)
	}
	if c := coord.Charged(unres, now) + coord.Charged(resv, now); c > 50 {
		t.Fatalf("account charged %d > 50", c)
	}
}

// TestAdmitWaitsOutALeaderChange: a node that needs more slots while the
// cluster elects a new leader gets no answer to its first renewals. That
// says nothing about the pool, so Admit asks again (found by the chaos
// suite's rolling restart: every node throttled for a moment when the
// leader restarted, although the account was far below its limit).
func TestAdmitWaitsOutALeaderChange(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 10, maxRun: time.Second}, ceilingsAt(10, 1), 1, clock.Now().Add(-time.Hour))
	var mu sync.Mutex
	unanswered := 3 // renewals lost to the election
	l := newSimAdmitter(t, "n1", clock, func(string) *Coordinator {
		mu.Lock()
		defer mu.Unlock()
		if unanswered > 0 {
			unanswered--
			return nil
		}
		return coord
	})
	if _, err := l.Admit(context.Background(), unreserved("a")); err != nil {
		t.Fatalf("admit across a leader change: %v", err)
	}
	if unanswered != 0 {
		t.Fatalf("%d renewals left unasked", unanswered)
	}
}

// TestAdmitThrottlesAtOnceWhenCutOff: once no renewal has reached the
// coordinator for SyncWait, Admit stops waiting for one (the node is cut
// off, and every caller would wait SyncWait for its 429), until a renewal
// gets through again.
func TestAdmitThrottlesAtOnceWhenCutOff(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 10, maxRun: time.Second}, ceilingsAt(10, 1), 1, clock.Now().Add(-time.Hour))
	var mu sync.Mutex
	reachable, asked := false, 0
	l := newSimAdmitter(t, "n1", clock, func(string) *Coordinator {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if reachable {
			return coord
		}
		return nil
	})
	ctx := context.Background()
	if err := l.Renew(ctx); err == nil {
		t.Fatal("renewal through a cut reached the coordinator")
	}
	clock.Advance(DefaultLeaseConfig().SyncWait)
	before := asked
	var te *ThrottleError
	if _, err := l.Admit(ctx, unreserved("a")); !errors.As(err, &te) || !strings.Contains(te.Cause, "not reached") {
		t.Fatalf("admit when cut off for SyncWait: %v, want a throttle naming the coordinator", err)
	}
	if asked != before {
		t.Fatalf("admit asked the unreachable coordinator %d times", asked-before)
	}
	mu.Lock()
	reachable = true
	mu.Unlock()
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit(ctx, unreserved("a")); err != nil {
		t.Fatalf("admit once the coordinator answers again: %v", err)
	}
}

// TestNoNodeIsStarvedBelowTheLimit: shares of a small pool add up to at
// most its limit, so a node that asks after the others gets its share as
// they renew (found by the chaos suite: with reserved concurrency 4, a
// third frontend was throttled for good while two others each held an
// idle slice of 2, because shares rounded up added up to 6).
func TestNoNodeIsStarvedBelowTheLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	const limit = 4
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: limit, maxRun: 5 * time.Second}, ceilingsAt(limit, 1), 1, clock.Now().Add(-time.Hour))
	pool := Pool{AccountID: "a", Function: "f"}
	held := map[string]Grant{}
	renew := func(node string) Grant {
		t.Helper()
		g := held[node]
		d := Demand{Pool: pool, Want: 2, Held: g.ID, HeldSlots: g.Slots, HeldRemaining: time.Second}
		grants, err := coord.Renew(renewal(node, d), clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		held[node] = grants[0]
		if c := coord.Charged(pool, clock.Now()); c > limit {
			t.Fatalf("charged %d > limit %d", c, limit)
		}
		return grants[0]
	}
	renew("n1")
	renew("n2")
	if g := renew("n3"); g.Slots == 0 && !g.Retry {
		t.Fatalf("n3 got nothing below the limit and was not told more may come: %+v", g)
	}
	for round := range 3 {
		clock.Advance(time.Second)
		renew("n1")
		renew("n2")
		if g := renew("n3"); g.Slots > 0 {
			t.Logf("n3 got %d slots after %d rounds of renewals", g.Slots, round+1)
			return
		}
	}
	t.Fatalf("n3 still holds no slot after three rounds; n1 holds %d, n2 %d", held["n1"].Slots, held["n2"].Slots)
}

// TestAdmitWaitsForIdleSlicesToComeBack: a node whose first invocation of
// a small pool finds it leased out, idle, to other nodes waits for them to
// renew smaller instead of throttling below the limit.
func TestAdmitWaitsForIdleSlicesToComeBack(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 2, maxRun: 5 * time.Second}, ceilingsAt(2, 1), 1, clock.Now().Add(-time.Hour))
	route := func(string) *Coordinator { return coord }
	ctx := context.Background()
	// Waiting passes simulated time, in which every node renews once a
	// second as its Run loop would.
	var nodes []*LeaseAdmitter
	lastRenew := clock.Now()
	after := func(d time.Duration) <-chan time.Time {
		clock.Advance(d)
		if clock.Now().Sub(lastRenew) >= time.Second {
			lastRenew = clock.Now()
			for _, n := range nodes {
				_ = n.Renew(ctx)
			}
		}
		ch := make(chan time.Time, 1)
		ch <- clock.Now()
		return ch
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		cfg := testLeaseConfig(id, clock, true)
		cfg.After = after
		l, err := NewLeaseAdmitter(cfg, &simTransport{node: id, clock: clock, route: route})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, l)
	}
	// One invocation at a time, through each node in turn: never more
	// than one running, against a limit of 2.
	req := Request{AccountID: "a", Function: "f", AccountLimit: 2}
	for i, n := range append(nodes, nodes...) {
		start := clock.Now()
		rel, err := n.Admit(ctx, req)
		if err != nil {
			t.Fatalf("invocation %d, alone in the pool: %v", i, err)
		}
		rel()
		t.Logf("invocation %d admitted after %v", i, clock.Now().Sub(start))
	}
}

// reservedLimits: account "a" has limit 50 and function "r" reserves 3;
// n1, n2 and n3 may hold leases.
type reservedLimits struct{}

func (reservedLimits) PoolLimit(p Pool) (int, time.Duration, bool) {
	if p.Function == "r" {
		return 3, 5 * time.Second, true
	}
	return 47, 5 * time.Second, true
}
func (reservedLimits) AccountLimit(string) int { return 50 }
func (reservedLimits) HolderNodes() []string   { return []string{"n1", "n2", "n3"} }

// TestNewCoordinatorKeepsAReportedSliceOfASmallPool: after a leader change
// a node that reports the slice of a reserved pool it held keeps it, while
// a silent node may still hold the rest of the pool (found by the chaos
// suite: invocations through a follower were throttled for the whole grace
// period after the leader, which had run some of them, was killed; the
// predecessor's account-wide ceiling was charged against the small pool).
func TestNewCoordinatorKeepsAReportedSliceOfASmallPool(t *testing.T) {
	start := time.Unix(1000, 0)
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), reservedLimits{}, ceilingsAt(5, 6), 7, start)
	pool := Pool{AccountID: "a", Function: "r"}
	held := Demand{Pool: pool, Want: 3, InFlight: 2, Held: GrantID{Epoch: 6, Seq: 40}, HeldSlots: 2, HeldRemaining: 2 * time.Second}
	g, err := coord.Renew(renewal("n1", held), start)
	if err != nil {
		t.Fatal(err)
	}
	if g[0].Slots != 2 {
		t.Fatalf("n1 renewed %d slots of the reserved pool, want the 2 it held (the silent n3 may hold the third)", g[0].Slots)
	}
	if g, _ := coord.Renew(renewal("n2", Demand{Pool: pool, Want: 1}), start); g[0].Slots != 0 || !g[0].Retry {
		t.Fatalf("n2 got %d slots while n1 holds 2 and n3 may hold 1 of 3", g[0].Slots)
	}
	// The account's other pool is charged what the silent node may hold of
	// the account beyond the reported slice: 5 - 2 = 3 of 47.
	if c := coord.Charged(pool, start); c > 3 {
		t.Fatalf("reserved pool charged %d > 3", c)
	}
}

// TestARaiseIsNotUndoneBeforeItIsUsed: a node asks for a reserved pool's
// 20 while another node holds the account's unreserved 30; the
// coordinator raises the account's ceiling for the ask, and the other
// node's renewal arrives before the asker comes back for its grant. That
// renewal must not lower the ceiling again: the raise is not charged yet,
// but it is wanted (found by make test under load, where renewals
// interleave: a reserved function ran 2 at once while the account was
// saturated, and an account with a limit of 50 ran 7).
func TestARaiseIsNotUndoneBeforeItIsUsed(t *testing.T) {
	now := time.Unix(1000, 0)
	ceilings := &memCeilings{}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), accountLimits{}, ceilings, 1, now.Add(-time.Hour))
	unres, resv := Pool{AccountID: "a"}, Pool{AccountID: "a", Function: "r"}
	renew := func(node string, d Demand) Grant {
		t.Helper()
		g, err := coord.Renew(renewal(node, d), now)
		if err != nil {
			t.Fatal(err)
		}
		return g[0]
	}
	renew("n1", Demand{Pool: unres, Want: 30}) // raises the ceiling
	g1 := renew("n1", Demand{Pool: unres, Want: 30})
	if g1.Slots != 30 {
		t.Fatalf("unreserved grant %d, want 30", g1.Slots)
	}
	g2 := renew("n2", Demand{Pool: resv, Want: 20}) // raises the ceiling again
	now = now.Add(100 * time.Millisecond)
	renew("n1", Demand{Pool: unres, Want: 37, InFlight: 30, Held: g1.ID, HeldSlots: 30, HeldRemaining: 2 * time.Second})
	g2 = renew("n2", Demand{Pool: resv, Want: 20, InFlight: g2.Slots, Held: g2.ID, HeldSlots: g2.Slots, HeldRemaining: 2 * time.Second})
	if c, _ := ceilings.Ceiling("a"); g2.Slots != 20 {
		t.Fatalf("the reserved pool got %d of its 20 on its second ask (ceiling %d): the other pool's renewal undid the raise", g2.Slots, c)
	}
}

// slowCoordinator answers renewals late: each takes delay of the shared
// fake clock, and an answer later than the caller's deadline is lost, as
// over gRPC (the deadline is the caller's RPCTimeout). before, when set,
// is called before a renewal is delivered: renewals of other nodes that
// reach the coordinator first.
type slowCoordinator struct {
	next   CoordinatorClient
	clock  *fakeClock
	mu     sync.Mutex
	delay  time.Duration
	before func()
}

func (s *slowCoordinator) RenewLeases(ctx context.Context, r Renewal) ([]Grant, error) {
	s.mu.Lock()
	delay, before := s.delay, s.before
	s.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok && delay >= time.Until(dl) {
		s.clock.Advance(time.Until(dl))
		return nil, context.DeadlineExceeded
	}
	if before != nil {
		before()
	}
	s.clock.Advance(delay)
	return s.next.RenewLeases(ctx, r)
}

func (s *slowCoordinator) set(delay time.Duration, before func()) {
	s.mu.Lock()
	s.delay, s.before = delay, before
	s.mu.Unlock()
}

// TestALateRenewalDoesNotThrottle: a coordinator slowed down (CPU
// contention, GC, a busy leader) answers every renewal 1.5 s late, well
// within the lease. The node keeps admitting throughout: a late answer
// still extends the lease from when its request left (found by make test
// on a loaded 2-CPU machine: answers later than the old 1 s RPCTimeout
// were dropped, the lease ran out, and the node refused everything with
// a 429 blaming the account's concurrency).
func TestALateRenewalDoesNotThrottle(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 10, maxRun: time.Second}, ceilingsAt(10, 1), 1, clock.Now().Add(-time.Hour))
	slow := &slowCoordinator{next: &simTransport{node: "n1", clock: clock, route: func(string) *Coordinator { return coord }}, clock: clock}
	l, err := NewLeaseAdmitter(testLeaseConfig("n1", clock, true), slow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var held []func()
	for range 3 {
		rel, err := l.Admit(ctx, unreserved("a"))
		if err != nil {
			t.Fatalf("admit before the coordinator slowed down: %v", err)
		}
		held = append(held, rel)
	}
	slow.set(1500*time.Millisecond, nil)
	for round := range 10 {
		if err := l.Renew(ctx); err != nil {
			t.Fatalf("renewal %d, answered 1.5 s late: %v", round, err)
		}
		rel, err := l.Admit(ctx, unreserved("a"))
		if err != nil {
			t.Fatalf("admit after %v of renewals answered 1.5 s late: %v", time.Duration(round+1)*1500*time.Millisecond, err)
		}
		rel()
	}
	for _, rel := range held {
		rel()
	}
}

// TestReservedConcurrencyWhileTheAccountIsSaturated: one node keeps the
// account's unreserved pool full (30 of 50) and renews; another node's
// renewals for a function reserving 20 are slow, so the first node's
// renewals reach the coordinator in between. The reserved function still
// gets all 20, one invocation after another through the admitter
// (TestARaiseIsNotUndoneBeforeItIsUsed pins the coordinator's part).
func TestReservedConcurrencyWhileTheAccountIsSaturated(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), accountLimits{}, &memCeilings{}, 1, clock.Now().Add(-time.Hour))
	route := func(string) *Coordinator { return coord }
	busy := newSimAdmitter(t, "n1", clock, route)
	ctx := context.Background()
	other := Request{AccountID: "a", Function: "o", AccountLimit: 50, ReservedTotal: 20}
	for i := range 30 {
		if _, err := busy.Admit(ctx, other); err != nil {
			t.Fatalf("unreserved admit %d of 30: %v", i, err)
		}
	}
	if _, err := busy.Admit(ctx, other); err == nil {
		t.Fatal("the unreserved pool admitted a 31st invocation")
	}
	slow := &slowCoordinator{next: &simTransport{node: "n2", clock: clock, route: route}, clock: clock}
	slow.set(100*time.Millisecond, func() { _ = busy.Renew(ctx) })
	l, err := NewLeaseAdmitter(testLeaseConfig("n2", clock, true), slow)
	if err != nil {
		t.Fatal(err)
	}
	reserved := Request{AccountID: "a", Function: "r", Reserved: ptr(20), AccountLimit: 50, ReservedTotal: 20}
	for i := range 20 {
		if _, err := l.Admit(ctx, reserved); err != nil {
			t.Fatalf("reserved admit %d of 20 while the account is saturated: %v", i, err)
		}
	}
	if c := coord.Charged(Pool{AccountID: "a"}, clock.Now()) + coord.Charged(Pool{AccountID: "a", Function: "r"}, clock.Now()); c > 50 {
		t.Fatalf("account charged %d > 50", c)
	}
}

// TestACutOffNodeFallsBackToItsFairShare: a node that cannot reach the
// coordinator once its lease ran out admits up to its fair share of the
// pool (the limit over the nodes) instead of refusing everything, says so
// when that share is in use, and the coordinator charges it that share
// meanwhile, so the nodes it still hears from are granted only the rest.
func TestACutOffNodeFallsBackToItsFairShare(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	limits := fixedLimits{limit: 30, maxRun: time.Second, nodes: []string{"n1", "n2", "n3"}}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), limits, ceilingsAt(30, 1), 1, clock.Now().Add(-time.Hour))
	var mu sync.Mutex
	reachable := true
	cfg := testLeaseConfig("n1", clock, true)
	cfg.FairShareNodes = func() int { return len(limits.nodes) }
	l, err := NewLeaseAdmitter(cfg, &simTransport{node: "n1", clock: clock, route: func(string) *Coordinator {
		mu.Lock()
		defer mu.Unlock()
		if reachable {
			return coord
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if _, err := l.Admit(ctx, unreserved("a")); err != nil {
			t.Fatalf("admit %d with the coordinator reachable: %v", i, err)
		}
	}
	mu.Lock()
	reachable = false
	mu.Unlock()
	clock.Advance(DefaultCoordinatorConfig().LeaseTTL + cfg.DriftMargin)
	if err := l.Renew(ctx); err == nil {
		t.Fatal("a renewal through the cut reached the coordinator")
	}
	req := Request{AccountID: "a", Function: "f", AccountLimit: 30}
	for i := range 8 { // 2 running + 8 = 30 / 3
		if _, err := l.Admit(ctx, req); err != nil {
			t.Fatalf("admit %d on the fair share: %v", i, err)
		}
	}
	var te *ThrottleError
	if _, err := l.Admit(ctx, req); !errors.As(err, &te) || !strings.Contains(te.Error(), "fair share") || strings.Contains(te.Error(), "30 is in use") {
		t.Fatalf("admit beyond the fair share: %v, want a throttle naming the fair share and the unreachable coordinator", err)
	}
	pool := Pool{AccountID: "a"}
	if c := coord.Charged(pool, clock.Now()); c < 10 {
		t.Fatalf("the coordinator charges the silent n1 %d, want its fair share of 10", c)
	}
	g, _ := coord.Renew(renewal("n2", Demand{Pool: pool, Want: 30}), clock.Now())
	if g[0].Slots > 20 {
		t.Fatalf("n2 was granted %d while n1 may admit 10 of 30", g[0].Slots)
	}
}

// clientFunc adapts a function to CoordinatorClient.
type clientFunc func(context.Context, Renewal) ([]Grant, error)

func (f clientFunc) RenewLeases(ctx context.Context, r Renewal) ([]Grant, error) { return f(ctx, r) }

// waitFor polls cond until it returns nil, failing the test after timeout
// (a ceiling, not an expectation).
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRunSendsRenewalsWithoutWaitingForLateAnswers: while the coordinator
// sits on a renewal, Run still sends the next one when the interval comes
// round, up to maxRenewals in flight, so late answers follow one another
// instead of leaving a gap of the delay at every renewal.
func TestRunSendsRenewalsWithoutWaitingForLateAnswers(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	coord, _ := NewCoordinator(DefaultCoordinatorConfig(), fixedLimits{limit: 10, maxRun: time.Second}, ceilingsAt(10, 1), 1, clock.Now().Add(-time.Hour))
	answer := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	client := clientFunc(func(ctx context.Context, r Renewal) ([]Grant, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case <-answer:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return coord.Renew(r, clock.Now())
	})
	cfg := testLeaseConfig("n1", clock, true)
	cfg.RPCTimeout = time.Hour // the test answers; no renewal times out
	ticks := make(chan chan time.Time, 16)
	cfg.After = func(time.Duration) <-chan time.Time {
		ch := make(chan time.Time, 1)
		ticks <- ch
		return ch
	}
	l, err := NewLeaseAdmitter(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	inFlight := func(want int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if calls != want {
				return fmt.Errorf("%d renewals sent, want %d", calls, want)
			}
			return nil
		}
	}
	waitFor(t, time.Minute, inFlight(1)) // the first goes out at once
	// Run's next timer, which it must set while a renewal is unanswered.
	nextTick := func() chan time.Time {
		t.Helper()
		select {
		case ch := <-ticks:
			return ch
		case <-time.After(time.Minute):
			t.Fatal("Run set no timer for the next renewal while one was unanswered")
			return nil
		}
	}
	for sent := 2; sent <= maxRenewals; sent++ {
		nextTick() <- clock.Now() // the interval comes round
		waitFor(t, time.Minute, inFlight(sent))
	}
	// One more interval sends nothing: Run sets its next timer instead.
	nextTick() <- clock.Now()
	nextTick()
	waitFor(t, time.Minute, inFlight(maxRenewals))
	close(answer)
	cancel()
	<-done
}
