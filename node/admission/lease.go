package admission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// GrantID orders the grants of all coordinators: Epoch is the coordinator's
// Raft term (it grows with every new leader), Seq counts its grants.
type GrantID struct {
	Epoch, Seq uint64
}

// Less reports whether g was issued before o.
func (g GrantID) Less(o GrantID) bool {
	return g.Epoch < o.Epoch || (g.Epoch == o.Epoch && g.Seq < o.Seq)
}

// Grant is a lease of Slots concurrent invocations in Pool, valid for TTL
// from the moment the node sent the request it answers.
type Grant struct {
	Pool  Pool
	ID    GrantID
	Slots int
	TTL   time.Duration
	// Retry is set when more may be granted shortly: the coordinator is
	// raising the account's ceiling, or is new and still learning what
	// nodes hold.
	Retry bool
}

// Demand is a node's report on one pool, sent with every renewal.
type Demand struct {
	Pool Pool
	// InFlight counts invocations admitted and not yet released, now.
	InFlight int
	// Want is how many slots the node would like to hold.
	Want int
	// Held is the grant the node admits against (zero ID: none), with
	// HeldSlots and what is left of it by the node's clock.
	Held          GrantID
	HeldSlots     int
	HeldRemaining time.Duration
}

// Holder identifies one life of a node's admitter to the coordinator.
type Holder struct {
	// Node is the node id; Incarnation is random per LeaseAdmitter, so a
	// node that restarts is a new holder and the grants of its previous
	// life stay charged until they lapse.
	Node        string
	Incarnation string
	// Age is how long this incarnation has been admitting, by the node's
	// clock. CleanStart says no earlier incarnation of the node can have
	// invocations running: there was none, or it shut down after all of
	// them had ended.
	Age        time.Duration
	CleanStart bool
}

// ID is the holder's key at the coordinator.
func (h Holder) ID() string { return h.Node + "/" + h.Incarnation }

// Renewal is one request to the coordinator.
type Renewal struct {
	Holder Holder
	// Full is set when Demands cover every pool the holder tracks (the
	// periodic renewal), so the coordinator knows all it holds.
	Full    bool
	Demands []Demand
}

// CoordinatorClient carries renewals to the coordinator (the Raft leader).
// The node wiring implements it over gRPC, or in-process on the leader.
type CoordinatorClient interface {
	// RenewLeases sends a renewal and returns a grant for each demand's
	// pool (order free). An error means no grant changes hands.
	RenewLeases(ctx context.Context, r Renewal) ([]Grant, error)
}

// LeaseConfig configures a LeaseAdmitter.
type LeaseConfig struct {
	// NodeID names the node to the coordinator (Holder.Node).
	NodeID string
	// CleanStart is Holder.CleanStart: the node has no earlier life, or
	// its last one ended with nothing running (the agent records that in
	// its data dir).
	CleanStart bool
	// RenewInterval is how often every held lease is renewed and demand
	// reported. It must be well under the coordinator's lease TTL (a third
	// or less), so one lost renewal does not let a lease lapse.
	RenewInterval time.Duration
	// SyncWait bounds how long Admit waits for on-demand renewals when the
	// node's slice of a pool is used up; past it Admit throttles. A first
	// invocation of an account on a node may need a Raft write (the
	// account's lease ceiling) before its grant, so this is seconds, not
	// milliseconds: a loaded but healthy cluster must not throttle.
	SyncWait time.Duration
	// MaxSyncRounds bounds the on-demand renewals one Admit waits for
	// (SyncWait bounds the time): enough for a burst to double its slice
	// a few times, for a new coordinator's grace period to end after a
	// leader change, or for idle slices elsewhere to come back, with the
	// growing waits between asks. Simulations whose waits take no time set
	// it low.
	MaxSyncRounds int
	// SyncSpacing is the least time between on-demand renewals of one pool
	// once the coordinator granted less than asked (the pool is at its
	// limit): in between, Admit throttles at once.
	SyncSpacing time.Duration
	// IdleRelease is how long a pool stays tracked without invocations;
	// then its slice is given back.
	IdleRelease time.Duration
	// DriftMargin is subtracted from every grant's TTL, covering the
	// difference in clock rate between node and coordinator and the
	// scheduling delay before a grant is applied.
	DriftMargin time.Duration
	// RPCTimeout bounds one renewal round trip. A late answer is still
	// worth having while the grant it carries can be used (its TTL less
	// DriftMargin from the moment the request left), so this is most of
	// the coordinator's LeaseTTL, not a network round trip: a coordinator
	// slowed by CPU contention or GC must not look unreachable. Renewals
	// do not wait for one another (Run keeps up to maxRenewals in flight).
	RPCTimeout time.Duration
	// FairShareNodes returns how many nodes share each pool (the nodes
	// that may hold leases, as this node's replica sees them), for the
	// fallback: a node cut off from the coordinator after its lease of a
	// pool ran out admits up to the pool's limit divided by it. Nil, or a
	// count below 1, disables the fallback (the node then throttles when
	// its lease ends).
	FairShareNodes func() int
	// Now is the clock (monotonic time) and After its timer; nil means
	// time.Now and time.After. Tests replace them.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Logger receives renewal failures.
	Logger *slog.Logger
}

// DefaultLeaseConfig returns the settings Stoke's nodes use with the
// coordinator's default TTL of 3 s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{
		RenewInterval: time.Second,
		SyncWait:      3 * time.Second,
		MaxSyncRounds: 24,
		SyncSpacing:   50 * time.Millisecond,
		IdleRelease:   30 * time.Second,
		DriftMargin:   100 * time.Millisecond,
		RPCTimeout:    2 * time.Second,
		Logger:        slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c LeaseConfig) Validate() error {
	switch {
	case c.RenewInterval <= 0 || c.SyncWait <= 0 || c.SyncSpacing <= 0 || c.IdleRelease <= 0 || c.RPCTimeout <= 0 || c.MaxSyncRounds <= 0:
		return errors.New("admission: RenewInterval, SyncWait, MaxSyncRounds, SyncSpacing, IdleRelease and RPCTimeout must be positive")
	case c.DriftMargin < 0:
		return errors.New("admission: DriftMargin must not be negative")
	case c.Logger == nil:
		return errors.New("admission: Logger is required")
	case c.NodeID == "":
		return errors.New("admission: NodeID is required")
	}
	return nil
}

// LeaseAdmitter is the cluster-wide Admitter of one node. It admits an
// invocation only while the node holds an unexpired grant for the pool
// with a free slot, so the invocations the node runs never exceed its
// slice; the coordinator keeps the slices of all nodes within the pool's
// limit. Methods are safe for concurrent use.
type LeaseAdmitter struct {
	cfg     LeaseConfig
	coord   CoordinatorClient
	log     *slog.Logger
	holder  Holder
	started time.Time

	// ack asks Run for a renewal now: a grant shrank (applyLocked).
	ack chan struct{}

	mu    sync.Mutex
	pools map[Pool]*leasePool
	// unreachableSince is when the renewals (periodic or on demand) began
	// to fail; zero while the coordinator answers.
	unreachableSince time.Time
}

// maxRenewals bounds the periodic renewals Run keeps in flight at once:
// with RPCTimeout under the lease TTL and RenewInterval a third of it,
// three let a renewal go out every interval although each answer takes
// up to RPCTimeout, so a slow coordinator's grants still follow one
// another without a gap.
const maxRenewals = 3

// leasePool is the node's state for one pool; guarded by LeaseAdmitter.mu.
type leasePool struct {
	inflight int
	grant    Grant
	expiry   time.Time // local; the grant is void from then on
	// answered is when the answer carrying grant arrived: the
	// coordinator received the request before, so by answered+TTL (plus
	// DriftMargin for the clocks' rates) it counts the node as possibly
	// admitting on its fair share (Coordinator, "Fallback").
	answered time.Time
	// Demand observed since the last report.
	peak, throttled int
	lastUsed        time.Time
	// want is what the last periodic renewal asked for.
	want int
	// On-demand renewal: at most one in flight per pool.
	sync     *syncCall
	lastSync time.Time
	limited  bool // the last on-demand renewal found the pool at its limit
	// failures counts on-demand renewals in a row that got no answer
	// (no leader, a leader change, the coordinator unreachable).
	failures int
	// retrySoon: the last on-demand renewal said more may come shortly;
	// retries counts such answers in a row (the wait before the next ask
	// grows with it).
	retrySoon bool
	retries   int
	waiters   int
}

type syncCall struct{ done chan struct{} }

// NewLeaseAdmitter returns an admitter that leases capacity from coord.
// Call Run to renew leases in the background.
func NewLeaseAdmitter(cfg LeaseConfig, coord CoordinatorClient) (*LeaseAdmitter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	var inc [6]byte
	_, _ = rand.Read(inc[:])
	return &LeaseAdmitter{cfg: cfg, coord: coord, log: cfg.Logger.With("component", "admission"),
		holder:  Holder{Node: cfg.NodeID, Incarnation: hex.EncodeToString(inc[:]), CleanStart: cfg.CleanStart},
		started: cfg.Now(), pools: map[Pool]*leasePool{}, ack: make(chan struct{}, 1)}, nil
}

// renewal builds a request as of now.
func (l *LeaseAdmitter) renewal(now time.Time, full bool, demands []Demand) Renewal {
	h := l.holder
	h.Age = now.Sub(l.started)
	return Renewal{Holder: h, Full: full, Demands: demands}
}

func (l *LeaseAdmitter) now() time.Time { return l.cfg.Now() }

// slotsLocked is what the pool's grant allows now (0 once expired).
func (p *leasePool) slotsLocked(now time.Time) int {
	if now.Before(p.expiry) {
		return p.grant.Slots
	}
	return 0
}

// Admit admits req if the node's slice of its pool has a free slot, or,
// once the node is cut off from the coordinator and its lease of the
// pool ran out, if its fair share of the pool has one (the fallback; see
// FairShareNodes). A renewal that is late changes nothing here: the
// current lease admits until it expires. When it has no free slot, Admit asks the coordinator for more (one request per pool
// at a time, shared by every waiting Admit) and waits, for at most
// MaxSyncRounds renewals, SyncWait and ctx. A renewal that gets no answer
// (no leader yet, a leader change) is no verdict on the pool: it is asked
// again after a backoff (SyncSpacing, doubling up to four times that)
// while SyncWait lasts, so an election costs latency, not throttles. Admit
// throttles at once when the coordinator's last answer showed the pool at
// its limit, when the coordinator has been unreachable for SyncWait or
// longer (the node is cut off: waiting would only delay the 429), and
// always for a function with reserved concurrency 0.
func (l *LeaseAdmitter) Admit(ctx context.Context, req Request) (func(), error) {
	if req.Reserved != nil && *req.Reserved == 0 {
		return nil, throttle(req, "")
	}
	pool := PoolOf(req)
	deadline := l.now().Add(l.cfg.SyncWait)
	l.mu.Lock()
	p := l.pools[pool]
	if p == nil {
		p = &leasePool{}
		l.pools[pool] = p
	}
	spaced := false // a wait between two renewals just ended
	rounds := 0     // renewals waited for
	for {
		now := l.now()
		p.lastUsed = now
		if p.inflight < l.admissibleLocked(p, req, now) {
			p.inflight++
			p.peak = max(p.peak, p.inflight)
			l.mu.Unlock()
			return l.releaser(p), nil
		}
		call := p.sync
		var done <-chan struct{}
		until := deadline
		switch {
		case call != nil:
			done = call.done
		case !now.Before(deadline) || rounds >= l.cfg.MaxSyncRounds || (p.limited && now.Sub(p.lastSync) < l.cfg.SyncSpacing) || l.cutOffLocked(now):
			// The pool is at its limit, the coordinator unreachable for
			// longer than anyone waits, or patience ran out: throttle at
			// once, as Lambda does.
			p.throttled++
			cause := l.causeLocked(p, req, now)
			l.mu.Unlock()
			return nil, throttle(req, cause)
		case p.failures > 0 && !spaced && now.Before(p.lastSync.Add(l.failureBackoff(p.failures))):
			// The last renewal got no answer: ask again after a backoff.
			if next := p.lastSync.Add(l.failureBackoff(p.failures)); next.Before(deadline) {
				until = next
			}
		case p.retrySoon && !spaced && now.Before(p.lastSync.Add(l.retryBackoff(p.retries))):
			// More may come shortly (a ceiling being raised, a new
			// coordinator's grace period, other nodes' slices shrinking
			// to their fair share): ask again in a moment.
			if next := p.lastSync.Add(l.retryBackoff(p.retries)); next.Before(deadline) {
				until = next
			}
		default:
			call = &syncCall{done: make(chan struct{})}
			p.sync = call
			p.lastSync = now
			done = call.done
			go l.syncRenew(pool, call)
		}
		spaced = done == nil
		if done != nil {
			rounds++
		}
		p.waiters++
		l.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if done == nil {
			timeout = l.cfg.After(max(until.Sub(now), 0)) // spacing
		} else {
			timer = time.NewTimer(max(until.Sub(now), 0))
			timeout = timer.C
		}
		select {
		case <-done:
		case <-timeout:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		l.mu.Lock()
		p.waiters--
		if ctx.Err() != nil {
			p.throttled++
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", throttle(req, "gave up waiting for a concurrency lease"), ctx.Err())
		}
	}
}

// retryBackoff is the wait before asking again after retries answers in
// a row that said more may come shortly: SyncSpacing/5, doubling up to
// four times SyncSpacing. A ceiling raise takes one Raft commit; other
// nodes' slices shrink only at their next renewals, a second or two.
func (l *LeaseAdmitter) retryBackoff(retries int) time.Duration {
	return min(l.cfg.SyncSpacing/5<<min(max(retries-1, 0), 8), 4*l.cfg.SyncSpacing)
}

// failureBackoff is the wait before an on-demand renewal that follows
// failures unanswered ones: SyncSpacing, doubling up to four times that.
func (l *LeaseAdmitter) failureBackoff(failures int) time.Duration {
	return l.cfg.SyncSpacing << min(max(failures-1, 0), 2)
}

// admissibleLocked is how many invocations of p's pool the node may run
// now: the slots of its unexpired lease, or, when it is cut off from the
// coordinator (no answer for the lease's TTL since the one that carried
// it, and the renewals since failed), its fair share of the pool's limit.
func (l *LeaseAdmitter) admissibleLocked(p *leasePool, req Request, now time.Time) int {
	if now.Before(p.expiry) {
		return p.grant.Slots
	}
	if share, ok := l.fallbackLocked(p, req, now); ok {
		return share
	}
	return 0
}

// fallbackLocked returns the node's fair share of the pool and whether
// the fallback applies now. It applies only to a pool the node held a
// lease of: the coordinator charges the node its fair share of exactly
// those pools while it cannot be sure the node still hears from it.
func (l *LeaseAdmitter) fallbackLocked(p *leasePool, req Request, now time.Time) (int, bool) {
	if l.cfg.FairShareNodes == nil || p.grant.ID == (GrantID{}) || l.unreachableSince.IsZero() {
		return 0, false
	}
	if now.Before(p.answered.Add(p.grant.TTL + l.cfg.DriftMargin)) {
		return 0, false
	}
	nodes := l.cfg.FairShareNodes()
	if nodes < 1 {
		return 0, false
	}
	return limitOf(req) / nodes, true
}

// cutOffLocked reports whether no renewal has reached the coordinator for
// SyncWait or longer.
func (l *LeaseAdmitter) cutOffLocked(now time.Time) bool {
	return !l.unreachableSince.IsZero() && now.Sub(l.unreachableSince) >= l.cfg.SyncWait
}

// reachedLocked records the outcome of a renewal for cutOffLocked.
func (l *LeaseAdmitter) reachedLocked(err error, sent time.Time) {
	switch {
	case err == nil:
		l.unreachableSince = time.Time{}
	case l.unreachableSince.IsZero():
		l.unreachableSince = sent
	}
}

// causeLocked explains a throttle that is not plainly a full pool (the
// coordinator's last answer showed the pool at its limit): "" then.
func (l *LeaseAdmitter) causeLocked(p *leasePool, req Request, now time.Time) string {
	if share, ok := l.fallbackLocked(p, req, now); ok {
		return fmt.Sprintf("this node has not reached the concurrency lease coordinator for %v and admits only its fair share of the pool, %d invocations, all running here",
			now.Sub(l.unreachableSince).Round(time.Millisecond), share)
	}
	if l.cutOffLocked(now) {
		since := now.Sub(l.unreachableSince).Round(time.Millisecond)
		if now.Before(p.expiry) {
			return fmt.Sprintf("this node's lease of %d slots of the pool is in use and the concurrency lease coordinator has not answered for %v", p.grant.Slots, since)
		}
		return fmt.Sprintf("this node has not reached the concurrency lease coordinator for %v and holds no lease of the pool", since)
	}
	if now.Before(p.expiry) && p.limited {
		return ""
	}
	if p.retrySoon {
		return "the concurrency lease coordinator had not granted this node a larger share of the pool in time (it was raising the account's lease ceiling or reclaiming idle shares from other nodes)"
	}
	if !now.Before(p.expiry) {
		return "this node's concurrency lease of the pool had run out and no renewal was answered in time"
	}
	return "this node's share of the pool is in use and the concurrency lease coordinator did not answer for more in time"
}

func (l *LeaseAdmitter) releaser(p *leasePool) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			p.inflight--
			l.mu.Unlock()
		})
	}
}

// syncRenew asks for more of one pool on behalf of waiting Admits. It
// reports every tracked pool (a full renewal), asking for the others what
// the last periodic renewal asked.
func (l *LeaseAdmitter) syncRenew(pool Pool, call *syncCall) {
	l.mu.Lock()
	sent := l.now()
	demands := make([]Demand, 0, len(l.pools))
	want := 0
	for q, p := range l.pools {
		d := l.demandLocked(q, p, sent)
		d.Want = p.want
		if q == pool {
			// Ask for double what is in use or waiting: a burst then needs
			// a few round trips, not one per invocation; the coordinator
			// caps it.
			d.Want = max(2*(p.inflight+p.waiters), p.inflight+p.waiters+1)
			want = d.Want
		}
		demands = append(demands, d)
	}
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RPCTimeout)
	grants, err := l.coord.RenewLeases(ctx, l.renewal(sent, true, demands))
	cancel()

	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pools[pool] // never dropped while an Admit waits on it
	p.sync = nil
	l.reachedLocked(err, sent)
	if err != nil {
		// No answer is no verdict on the pool: Admit asks again.
		p.limited, p.retrySoon, p.retries = false, false, 0
		p.failures++
		l.log.Debug("on-demand lease renewal failed", "pool", pool.String(), "err", err)
		close(call.done)
		return
	}
	p.failures = 0
	p.limited, p.retrySoon = true, false
	for _, g := range grants {
		if q := l.pools[g.Pool]; q != nil {
			l.applyLocked(q, g, sent)
		}
		if g.Pool == pool {
			p.limited, p.retrySoon = g.Slots < want && !g.Retry, g.Retry
			if g.Retry {
				p.retries++
			} else {
				p.retries = 0
			}
		}
	}
	close(call.done)
}

// demandLocked reports pool p as of now.
func (l *LeaseAdmitter) demandLocked(pool Pool, p *leasePool, now time.Time) Demand {
	d := Demand{Pool: pool, InFlight: p.inflight}
	if now.Before(p.expiry) {
		d.Held, d.HeldSlots, d.HeldRemaining = p.grant.ID, p.grant.Slots, p.expiry.Sub(now)
	}
	return d
}

// applyLocked installs g if it is newer than the grant held. Its expiry
// counts from sent, the moment the request left: the coordinator counts
// from when it received it, later, so the node's lease always ends first.
//
// A grant smaller than the unexpired one it replaces is acknowledged by a
// renewal at once (Run sends it): the coordinator charges the node the
// larger grant until the node reports holding the smaller one, and other
// nodes may be waiting for those slots.
func (l *LeaseAdmitter) applyLocked(p *leasePool, g Grant, sent time.Time) {
	if !p.grant.ID.Less(g.ID) {
		return
	}
	now := l.now()
	shrunk := g.Slots < p.slotsLocked(now)
	p.grant = g
	p.expiry = sent.Add(g.TTL - l.cfg.DriftMargin)
	p.answered = now
	if shrunk {
		select {
		case l.ack <- struct{}{}:
		default:
		}
	}
}

// Run renews every tracked pool each RenewInterval until ctx ends, and
// soon after a grant shrank, to acknowledge it.
//
// A renewal goes out every RenewInterval whether or not the previous one
// was answered (up to maxRenewals in flight): a coordinator slowed down
// by a loaded machine answers late, and each late answer still extends
// the lease from the moment its request left, so the grants follow one
// another and the node goes on admitting. Waiting for each answer before
// sending the next would leave a gap of the answer's delay at every
// renewal, and a node throttles in that gap although nothing is wrong.
//
// The first renewal goes out at once, and after a failed one (no leader
// yet, a leader change) the next follows after SyncSpacing, doubling up
// to four times that: a new coordinator's grace period ends once every
// node has reported to it, so reporting promptly matters more than
// sparing a few requests while there is no leader.
func (l *LeaseAdmitter) Run(ctx context.Context) {
	results := make(chan error, maxRenewals)
	inflight := 0
	send := func() {
		inflight++
		go func() { results <- l.Renew(ctx) }()
	}
	send()
	next := l.cfg.After(l.cfg.RenewInterval)
	retry := l.cfg.SyncSpacing
	for {
		select {
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-results
			}
			return
		case err := <-results:
			inflight--
			if err == nil {
				retry = l.cfg.SyncSpacing
				continue
			}
			l.log.Debug("lease renewal failed", "err", err)
			if inflight == 0 {
				next = l.cfg.After(min(retry, l.cfg.RenewInterval))
				retry = min(2*retry, 4*l.cfg.SyncSpacing)
			}
		case <-next:
			if inflight < maxRenewals {
				send()
			}
			next = l.cfg.After(l.cfg.RenewInterval)
		case <-l.ack:
			// Acknowledge a smaller grant soon, at most once per SyncSpacing.
			next = l.cfg.After(l.cfg.SyncSpacing)
		}
	}
}

// Renew reports every tracked pool's demand and applies the grants that
// come back: the periodic renewal Run performs (sent even when no pool is
// tracked), exposed for tests. Pools idle for IdleRelease are reported
// once with Want 0 and dropped.
func (l *LeaseAdmitter) Renew(ctx context.Context) error {
	l.mu.Lock()
	sent := l.now()
	var demands []Demand
	for pool, p := range l.pools {
		d := l.demandLocked(pool, p, sent)
		idle := p.inflight == 0 && p.waiters == 0 && p.sync == nil && sent.Sub(p.lastUsed) >= l.cfg.IdleRelease
		if idle {
			delete(l.pools, pool)
		} else {
			// What was needed over the last interval, plus a quarter (at
			// least one) of headroom so growth does not always throttle.
			// A pool idle for the interval wants nothing: its slice goes
			// back to nodes that need it (in a pool of a few slots, idle
			// slices on every frontend would throttle the one that gets
			// the traffic), and its next invocation asks on demand.
			need := p.peak + p.throttled
			d.Want = 0
			if need > 0 {
				d.Want = need + max(1, need/4)
			}
			p.want = d.Want
		}
		p.peak, p.throttled = p.inflight, 0
		demands = append(demands, d)
	}
	l.mu.Unlock()
	// Sent even without demands: a new coordinator learns from it that
	// this holder holds nothing.
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RPCTimeout)
	defer cancel()
	grants, err := l.coord.RenewLeases(ctx, l.renewal(sent, true, demands))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reachedLocked(err, sent)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if p := l.pools[g.Pool]; p != nil {
			l.applyLocked(p, g, sent)
		}
	}
	return nil
}

// PoolState is one pool as this node holds it (for metrics and tests).
type PoolState struct {
	Pool     Pool
	InFlight int
	Slots    int // 0 once the lease expired
}

// Pools returns the state of every tracked pool.
func (l *LeaseAdmitter) Pools() []PoolState {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	out := make([]PoolState, 0, len(l.pools))
	for pool, p := range l.pools {
		out = append(out, PoolState{Pool: pool, InFlight: p.inflight, Slots: p.slotsLocked(now)})
	}
	return out
}

// InFlightTotal returns every invocation this node admitted and has not
// released.
func (l *LeaseAdmitter) InFlightTotal() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.pools {
		n += p.inflight
	}
	return n
}

// InFlight returns the invocations of an account this node admitted and
// has not released.
func (l *LeaseAdmitter) InFlight(accountID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for pool, p := range l.pools {
		if pool.AccountID == accountID {
			n += p.inflight
		}
	}
	return n
}
