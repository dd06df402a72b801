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

// CoordinatorClient carries renewals to the coordinator (the Raft leader).
// The node wiring implements it over gRPC, or in-process on the leader.
type CoordinatorClient interface {
	// RenewLeases sends holder's demands and returns a grant for each
	// demand's pool (order free). An error means no grant changes hands.
	RenewLeases(ctx context.Context, holder string, demands []Demand) ([]Grant, error)
}

// LeaseConfig configures a LeaseAdmitter.
type LeaseConfig struct {
	// NodeID names the node to the coordinator. Each LeaseAdmitter adds a
	// random incarnation to it, so a node that restarts is a new holder
	// and the grants of its previous life stay charged until they lapse.
	NodeID string
	// RenewInterval is how often every held lease is renewed and demand
	// reported. It must be well under the coordinator's lease TTL (a third
	// or less), so one lost renewal does not let a lease lapse.
	RenewInterval time.Duration
	// SyncWait bounds how long Admit waits for on-demand renewals when the
	// node's slice of a pool is used up; past it Admit throttles.
	SyncWait time.Duration
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
	// RPCTimeout bounds one renewal round trip.
	RPCTimeout time.Duration
	// Now is the clock (monotonic time); nil means time.Now. Tests replace it.
	Now func() time.Time
	// Logger receives renewal failures.
	Logger *slog.Logger
}

// DefaultLeaseConfig returns the settings Stoke's nodes use with the
// coordinator's default TTL of 3 s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{
		RenewInterval: time.Second,
		SyncWait:      time.Second,
		SyncSpacing:   50 * time.Millisecond,
		IdleRelease:   30 * time.Second,
		DriftMargin:   100 * time.Millisecond,
		RPCTimeout:    time.Second,
		Logger:        slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c LeaseConfig) Validate() error {
	switch {
	case c.RenewInterval <= 0 || c.SyncWait <= 0 || c.SyncSpacing <= 0 || c.IdleRelease <= 0 || c.RPCTimeout <= 0:
		return errors.New("admission: RenewInterval, SyncWait, SyncSpacing, IdleRelease and RPCTimeout must be positive")
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
	cfg    LeaseConfig
	coord  CoordinatorClient
	log    *slog.Logger
	holder string

	mu    sync.Mutex
	pools map[Pool]*leasePool
}

// leasePool is the node's state for one pool; guarded by LeaseAdmitter.mu.
type leasePool struct {
	inflight int
	grant    Grant
	expiry   time.Time // local; the grant is void from then on
	// Demand observed since the last report.
	peak, throttled int
	lastUsed        time.Time
	// On-demand renewal: at most one in flight per pool.
	sync     *syncCall
	lastSync time.Time
	limited  bool // the last on-demand renewal got less than it asked
	waiters  int
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
	var inc [6]byte
	_, _ = rand.Read(inc[:])
	return &LeaseAdmitter{cfg: cfg, coord: coord, log: cfg.Logger.With("component", "admission"),
		holder: cfg.NodeID + "/" + hex.EncodeToString(inc[:]), pools: map[Pool]*leasePool{}}, nil
}

// Holder is the name this admitter renews under: the node id and this
// incarnation.
func (l *LeaseAdmitter) Holder() string { return l.holder }

func (l *LeaseAdmitter) now() time.Time { return l.cfg.Now() }

// slotsLocked is what the pool's grant allows now (0 once expired).
func (p *leasePool) slotsLocked(now time.Time) int {
	if now.Before(p.expiry) {
		return p.grant.Slots
	}
	return 0
}

// Admit admits req if the node's slice of its pool has a free slot. When
// it has none, Admit asks the coordinator for more (one request per pool
// at a time, shared by every waiting Admit) and waits up to SyncWait or
// ctx; a function with reserved concurrency 0 is throttled at once.
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
	for {
		now := l.now()
		p.lastUsed = now
		if p.inflight < p.slotsLocked(now) {
			p.inflight++
			p.peak = max(p.peak, p.inflight)
			l.mu.Unlock()
			return l.releaser(p), nil
		}
		call := p.sync
		if call == nil {
			if !now.Before(deadline) || (p.limited && now.Sub(p.lastSync) < l.cfg.SyncSpacing) {
				p.throttled++
				l.mu.Unlock()
				return nil, throttle(req, l.causeLocked(p, now))
			}
			call = &syncCall{done: make(chan struct{})}
			p.sync = call
			p.lastSync = now
			go l.syncRenew(pool, p, call)
		}
		p.waiters++
		l.mu.Unlock()
		wait := time.NewTimer(max(deadline.Sub(now), 0))
		select {
		case <-call.done:
		case <-wait.C:
		case <-ctx.Done():
		}
		wait.Stop()
		l.mu.Lock()
		p.waiters--
		if ctx.Err() != nil {
			p.throttled++
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", throttle(req, "gave up waiting for a concurrency lease"), ctx.Err())
		}
	}
}

// causeLocked explains a throttle that is not plainly a full pool.
func (l *LeaseAdmitter) causeLocked(p *leasePool, now time.Time) string {
	if p.grant.ID == (GrantID{}) || !now.Before(p.expiry) {
		return "this node holds no concurrency lease for the pool; the coordinator is unreachable or the pool is full"
	}
	return ""
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

// syncRenew asks for more of one pool on behalf of waiting Admits.
func (l *LeaseAdmitter) syncRenew(pool Pool, p *leasePool, call *syncCall) {
	l.mu.Lock()
	sent := l.now()
	d := l.demandLocked(pool, p, sent)
	// Ask for double what is in use or waiting: a burst then needs a few
	// round trips, not one per invocation; the coordinator caps it.
	d.Want = max(2*(p.inflight+p.waiters), p.inflight+p.waiters+1)
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RPCTimeout)
	grants, err := l.coord.RenewLeases(ctx, l.holder, []Demand{d})
	cancel()

	l.mu.Lock()
	defer l.mu.Unlock()
	p.sync = nil
	p.limited = true
	if err != nil {
		l.log.Debug("on-demand lease renewal failed", "pool", pool.String(), "err", err)
	} else {
		for _, g := range grants {
			if g.Pool == pool {
				l.applyLocked(p, g, sent)
				p.limited = g.Slots < d.Want
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
func (l *LeaseAdmitter) applyLocked(p *leasePool, g Grant, sent time.Time) {
	if !p.grant.ID.Less(g.ID) {
		return
	}
	p.grant = g
	p.expiry = sent.Add(g.TTL - l.cfg.DriftMargin)
}

// Run renews every tracked pool each RenewInterval until ctx ends.
func (l *LeaseAdmitter) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.Renew(ctx); err != nil {
			l.log.Debug("lease renewal failed", "err", err)
		}
	}
}

// Renew reports every tracked pool's demand and applies the grants that
// come back: the periodic renewal Run performs, exposed for tests. Pools
// idle for IdleRelease are reported once with Want 0 and dropped.
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
			need := p.peak + p.throttled
			d.Want = need + max(1, need/4)
		}
		p.peak, p.throttled = p.inflight, 0
		demands = append(demands, d)
	}
	l.mu.Unlock()
	if len(demands) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RPCTimeout)
	defer cancel()
	grants, err := l.coord.RenewLeases(ctx, l.holder, demands)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
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
