package admission

import (
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Limits tells the coordinator what each pool may hold, from its replica.
type Limits interface {
	// PoolLimit returns the pool's concurrency limit and MaxRun, the
	// longest an invocation admitted in the pool can still run after its
	// admission (queueing, Init and the function's timeout). ok is false
	// when the pool does not exist (no such account, or a function without
	// reserved concurrency): it gets no slots.
	PoolLimit(p Pool) (limit int, maxRun time.Duration, ok bool)
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
// charge(node, t) is at most the pool's limit, where charge bounds the
// invocations the node may be running in the pool at t: the largest of
// the in-flight count it last reported (until MaxRun after that report)
// and the slots of every grant it may still hold or have admitted under
// (until MaxRun after that grant's expiry). A new grant is only ever the
// room left under the limit by the other nodes' charges. A new
// coordinator, which does not know its predecessor's grants, spends a
// grace period (LeaseTTL + MaxRun + LeaderMargin) re-granting each node at
// most what the node reports it holds, so the predecessor's invariant
// carries over until every grant it made has lapsed.
//
// All methods are safe for concurrent use. Times are passed in, so the
// coordinator itself reads no clock.
type Coordinator struct {
	cfg    CoordinatorConfig
	limits Limits
	epoch  uint64
	start  time.Time

	mu    sync.Mutex
	seq   uint64
	pools map[Pool]map[string]*holder
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
	// holding; legacySlots caps what it may get during the grace period.
	legacy      issued
	legacySlots int
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
	return &Coordinator{cfg: cfg, limits: limits, epoch: epoch, start: now, pools: map[Pool]map[string]*holder{}}, nil
}

// Epoch is the coordinator's epoch.
func (c *Coordinator) Epoch() uint64 { return c.epoch }

// ErrStaleCoordinator is returned to a node that already holds a grant of
// a newer coordinator: this one was deposed.
var ErrStaleCoordinator = errors.New("admission: a newer coordinator exists")

// Renew records a node's demands and returns one grant per demand.
func (c *Coordinator) Renew(node string, demands []Demand, now time.Time) ([]Grant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Grant, 0, len(demands))
	for _, d := range demands {
		if d.Held.Epoch > c.epoch {
			return nil, ErrStaleCoordinator
		}
		out = append(out, c.renewLocked(node, d, now))
	}
	return out, nil
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
	switch {
	case d.Held.Epoch == c.epoch:
		// The node admits against d.Held now; invocations it admitted
		// under older grants are in d.InFlight.
		h.grants = slices.DeleteFunc(h.grants, func(g issued) bool { return g.seq < d.Held.Seq })
	case d.HeldSlots > 0 && d.HeldRemaining > 0:
		if exp := now.Add(d.HeldRemaining); exp.After(h.legacy.expiry) {
			h.legacy.expiry = exp
		}
		h.legacy.slots = max(h.legacy.slots, d.HeldSlots)
		h.legacySlots = max(h.legacySlots, d.HeldSlots)
	}
	h.inflight, h.want, h.reported = d.InFlight, max(d.Want, 0), now

	others := 0
	for id, o := range holders {
		if id != node {
			others += o.charge(now, maxRun)
		}
	}
	slots := min(h.want, c.fairShareLocked(holders, node, limit, now), max(limit-others, 0))
	if now.Before(c.start.Add(c.cfg.LeaseTTL + maxRun + c.cfg.LeaderMargin)) {
		// Grace: a predecessor's grants may still be out there.
		slots = min(slots, h.legacySlots)
	}
	slots = max(slots, 0)
	c.seq++
	h.grants = append(h.grants, issued{seq: c.seq, slots: slots, expiry: now.Add(c.cfg.LeaseTTL)})
	return Grant{Pool: d.Pool, ID: GrantID{Epoch: c.epoch, Seq: c.seq}, Slots: slots, TTL: c.cfg.LeaseTTL}
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
