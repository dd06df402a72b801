package admission

import (
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Limits tells the coordinator what each pool may hold and which nodes
// may hold leases, from its replica.
type Limits interface {
	// PoolLimit returns the pool's concurrency limit and MaxRun, the
	// longest an invocation admitted in the pool can still run after its
	// admission (queueing, Init and the function's timeout). ok is false
	// when the pool does not exist (no such account, or a function without
	// reserved concurrency): it gets no slots.
	PoolLimit(p Pool) (limit int, maxRun time.Duration, ok bool)
	// AccountLimit returns the account's concurrency limit, which the
	// slices of all its pools together never exceed.
	AccountLimit(accountID string) int
	// HolderNodes lists the nodes that may hold leases (the committed
	// node records).
	HolderNodes() []string
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// LeaseTTL is how long a grant lasts. A node that cannot renew stops
	// admitting within it; the slots it held return to the pool MaxRun
	// after that.
	LeaseTTL time.Duration
	// LeaderMargin is how long a deposed coordinator may go on granting
	// before it learns it lost leadership (Raft's leader lease); a new
	// coordinator adds it to its grace period.
	LeaderMargin time.Duration
	// ActiveFor is how long after its last report a node's demand counts
	// when the limit is shared out.
	ActiveFor time.Duration
}

// DefaultCoordinatorConfig returns the settings Stoke uses.
func DefaultCoordinatorConfig() CoordinatorConfig {
	return CoordinatorConfig{LeaseTTL: 3 * time.Second, LeaderMargin: time.Second, ActiveFor: 3 * time.Second}
}

// Validate reports the first setting that cannot work.
func (c CoordinatorConfig) Validate() error {
	if c.LeaseTTL <= 0 || c.LeaderMargin < 0 || c.ActiveFor <= 0 {
		return errors.New("admission: LeaseTTL and ActiveFor must be positive, LeaderMargin not negative")
	}
	return nil
}

// Coordinator leases slices of every pool's limit to nodes. One runs on
// the Raft leader; a new leader starts a new one with a higher epoch.
//
// Invariant: for every pool, at any time t, the sum over nodes of
// charge(node, t) is at most the pool's limit (but see below for limits
// that shrink), and the sum over all pools of an account is at most the
// account's limit, where charge bounds the
// invocations the node may be running in the pool at t: the largest of
// the in-flight count it last reported (until MaxRun after that report)
// and the slots of every grant it may still hold or have admitted under
// (until MaxRun after that grant's expiry). A new grant is only ever the
// room left under the limit by the other nodes' charges. A new
// coordinator does not know its predecessor's grants: until every node
// that may hold one has told it everything it holds (a full renewal from
// an incarnation with no unknown predecessor: a clean start, or one that
// began MaxRun ago), and at most for LeaseTTL + MaxRun + LeaderMargin,
// it is in a grace period in which it re-grants each node at most what
// the node reports holding, so the predecessor's invariant carries over.
// In a healthy cluster every node renews within a second of a leader
// change, which ends the grace period.
//
// All methods are safe for concurrent use. Times are passed in, so the
// coordinator itself reads no clock.
type Coordinator struct {
	cfg    CoordinatorConfig
	limits Limits
	epoch  uint64
	start  time.Time

	mu       sync.Mutex
	seq      uint64
	pools    map[Pool]map[string]*holder
	checkins map[string]checkin // node id -> its latest full renewal
}

// checkin is what a full renewal told about a node's incarnation.
type checkin struct {
	incarnation string
	started     time.Time // by this coordinator's clock
	clean       bool
}

// holder is one node's standing in one pool.
type holder struct {
	want     int
	inflight int
	reported time.Time
	// grants this coordinator issued to the node that it may still hold,
	// oldest first.
	grants []issued
	// legacy is the grant of an earlier coordinator the node reported
	// holding (until the node holds one of ours); legacyCharge is the most
	// the predecessor must have charged it (held slots or in flight),
	// which the grace period may share out.
	legacy       issued
	legacyCharge int
}

type issued struct {
	seq    uint64
	slots  int
	expiry time.Time
}

// NewCoordinator starts a coordinator for epoch (the Raft term of the
// leadership it serves) at now.
func NewCoordinator(cfg CoordinatorConfig, limits Limits, epoch uint64, now time.Time) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, limits: limits, epoch: epoch, start: now,
		pools: map[Pool]map[string]*holder{}, checkins: map[string]checkin{}}, nil
}

// Epoch is the coordinator's epoch.
func (c *Coordinator) Epoch() uint64 { return c.epoch }

// ErrStaleCoordinator is returned to a node that already holds a grant of
// a newer coordinator: this one was deposed.
var ErrStaleCoordinator = errors.New("admission: a newer coordinator exists")

// Renew records a renewal and returns one grant per demand.
func (c *Coordinator) Renew(r Renewal, now time.Time) ([]Grant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range r.Demands {
		if d.Held.Epoch > c.epoch {
			return nil, ErrStaleCoordinator
		}
	}
	if r.Full {
		c.checkins[r.Holder.Node] = checkin{incarnation: r.Holder.Incarnation, started: now.Add(-r.Holder.Age), clean: r.Holder.CleanStart}
	}
	out := make([]Grant, 0, len(r.Demands))
	for _, d := range r.Demands {
		out = append(out, c.renewLocked(r.Holder.ID(), d, now))
	}
	return out, nil
}

// inGraceLocked reports whether a predecessor's grants in a pool with
// maxRun may still be unknown to this coordinator.
func (c *Coordinator) inGraceLocked(now time.Time, maxRun time.Duration) bool {
	if !now.Before(c.start.Add(c.cfg.LeaseTTL + maxRun + c.cfg.LeaderMargin)) {
		return false
	}
	for _, node := range c.limits.HolderNodes() {
		ci, ok := c.checkins[node]
		if !ok || !(ci.clean || !now.Before(ci.started.Add(maxRun))) {
			return true
		}
	}
	return false
}

func (c *Coordinator) renewLocked(node string, d Demand, now time.Time) Grant {
	limit, maxRun, ok := c.limits.PoolLimit(d.Pool)
	if !ok {
		limit = 0
	}
	holders := c.pools[d.Pool]
	if holders == nil {
		holders = map[string]*holder{}
		c.pools[d.Pool] = holders
	}
	c.expireLocked(holders, now, maxRun)
	h := holders[node]
	if h == nil {
		h = &holder{}
		holders[node] = h
	}
	if d.Held.Epoch == c.epoch {
		// The node admits against d.Held now; invocations it admitted
		// under older grants, a predecessor's included, are in d.InFlight.
		h.grants = slices.DeleteFunc(h.grants, func(g issued) bool { return g.seq < d.Held.Seq })
		h.legacy = issued{}
	} else {
		// What the predecessor charged this holder at least: the grant it
		// holds and what it runs.
		if d.HeldSlots > 0 && d.HeldRemaining > 0 {
			if exp := now.Add(d.HeldRemaining); exp.After(h.legacy.expiry) {
				h.legacy.expiry = exp
			}
			h.legacy.slots = max(h.legacy.slots, d.HeldSlots)
		}
		h.legacyCharge = max(h.legacyCharge, d.HeldSlots, d.InFlight)
	}
	h.inflight, h.want, h.reported = d.InFlight, max(d.Want, 0), now

	others, budget := 0, 0
	for id, o := range holders {
		if id != node {
			others += o.charge(now, maxRun)
		}
		budget += o.legacyCharge
	}
	// The account's pools together stay within the account limit too:
	// when a reservation is created the unreserved pool's limit drops at
	// once, but slices granted before are only renewed smaller within a
	// renewal interval, and their invocations run on; the reserved pool
	// waits for them rather than push the account over its limit.
	room := min(limit-others, c.limits.AccountLimit(d.Pool.AccountID)-c.accountChargeLocked(d.Pool, node, now))
	grace := c.inGraceLocked(now, maxRun)
	if grace {
		// A predecessor's grants to nodes not heard from may still be in
		// use: only what the nodes heard from held (budget) is known to be
		// free of them, so only that is shared out, between those nodes.
		room = min(room, budget-others)
	}
	slots := max(min(h.want, c.fairShareLocked(holders, node, limit, now), room), 0)
	c.seq++
	h.grants = append(h.grants, issued{seq: c.seq, slots: slots, expiry: now.Add(c.cfg.LeaseTTL)})
	return Grant{Pool: d.Pool, ID: GrantID{Epoch: c.epoch, Seq: c.seq}, Slots: slots, TTL: c.cfg.LeaseTTL,
		Grace: grace && slots < h.want}
}

// accountChargeLocked sums the charges of every pool of p's account,
// leaving out node's charge in p.
func (c *Coordinator) accountChargeLocked(p Pool, node string, now time.Time) int {
	n := 0
	for q, holders := range c.pools {
		if q.AccountID != p.AccountID {
			continue
		}
		_, maxRun, _ := c.limits.PoolLimit(q)
		for id, h := range holders {
			if q != p || id != node {
				n += h.charge(now, maxRun)
			}
		}
	}
	return n
}

// charge bounds the invocations the node may be running at now.
func (h *holder) charge(now time.Time, maxRun time.Duration) int {
	n := 0
	if now.Before(h.reported.Add(maxRun)) {
		n = h.inflight
	}
	for _, g := range h.grants {
		if now.Before(g.expiry.Add(maxRun)) {
			n = max(n, g.slots)
		}
	}
	if now.Before(h.legacy.expiry.Add(maxRun)) {
		n = max(n, h.legacy.slots)
	}
	return n
}

// expireLocked forgets what can no longer be charged.
func (c *Coordinator) expireLocked(holders map[string]*holder, now time.Time, maxRun time.Duration) {
	for id, h := range holders {
		h.grants = slices.DeleteFunc(h.grants, func(g issued) bool { return !now.Before(g.expiry.Add(maxRun)) })
		if len(h.grants) == 0 && h.charge(now, maxRun) == 0 && now.Sub(h.reported) > c.cfg.ActiveFor {
			delete(holders, id)
		}
	}
}

// fairShareLocked is node's max-min fair share of limit among the nodes
// that reported demand within ActiveFor: every node gets what it wants if
// the wants fit, else the wants above a common level are cut to it.
func (c *Coordinator) fairShareLocked(holders map[string]*holder, node string, limit int, now time.Time) int {
	var wants []int
	total := 0
	for id, h := range holders {
		if id == node || now.Sub(h.reported) <= c.cfg.ActiveFor {
			wants = append(wants, h.want)
			total += h.want
		}
	}
	mine := holders[node].want
	if total <= limit {
		return mine
	}
	slices.Sort(wants)
	left := float64(limit)
	for i, w := range wants {
		level := left / float64(len(wants)-i)
		if float64(w) > level {
			return min(mine, int(math.Ceil(level)))
		}
		left -= float64(w)
	}
	return mine
}

// InFlight is the sum over nodes of the in-flight counts they last
// reported for the account's pools (each at most a renewal interval old).
func (c *Coordinator) InFlight(accountID string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for pool, holders := range c.pools {
		if pool.AccountID != accountID {
			continue
		}
		for _, h := range holders {
			if now.Sub(h.reported) <= c.cfg.ActiveFor {
				n += h.inflight
			}
		}
	}
	return n
}

// Charged returns the sum of the nodes' charges in a pool: what the
// invariant keeps within the limit (for tests and diagnostics).
func (c *Coordinator) Charged(p Pool, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, maxRun, _ := c.limits.PoolLimit(p)
	n := 0
	for _, h := range c.pools[p] {
		n += h.charge(now, maxRun)
	}
	return n
}
