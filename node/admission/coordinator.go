package admission

import (
	"errors"
	"slices"
	"strings"
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

// Ceilings keeps each account's lease ceiling where a successor will find
// it (the node layer: Raft, fsm.SetLeaseCeiling). The coordinator never
// lets the sum of an account's charges exceed the committed ceiling, so a
// new coordinator knows its predecessor had at most that much out.
type Ceilings interface {
	// Ceiling returns the account's committed ceiling and the epoch of the
	// coordinator that set it (0, 0 when none was ever set).
	Ceiling(accountID string) (ceiling int, epoch uint64)
	// Propose asks, without waiting, for the account's ceiling to become
	// ceiling on behalf of epoch; a proposal from an older epoch than the
	// committed one must fail. The coordinator watches Ceiling for the
	// outcome and has at most one proposal per account in flight.
	Propose(accountID string, ceiling int, epoch uint64)
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
	// ProposalTimeout is how long a ceiling proposal may take before the
	// coordinator considers it failed.
	ProposalTimeout time.Duration
}

// DefaultCoordinatorConfig returns the settings Stoke uses.
func DefaultCoordinatorConfig() CoordinatorConfig {
	return CoordinatorConfig{LeaseTTL: 3 * time.Second, LeaderMargin: time.Second, ActiveFor: 3 * time.Second,
		ProposalTimeout: 2 * time.Second}
}

// Validate reports the first setting that cannot work.
func (c CoordinatorConfig) Validate() error {
	if c.LeaseTTL <= 0 || c.LeaderMargin < 0 || c.ActiveFor <= 0 || c.ProposalTimeout <= 0 {
		return errors.New("admission: LeaseTTL, ActiveFor and ProposalTimeout must be positive, LeaderMargin not negative")
	}
	return nil
}

// ceilingHeadroom is how far above what is charged an account's ceiling is
// raised (and may stay before it is lowered): a tenth of the limit, so a
// burst needs a Raft write only now and then, and a new coordinator finds
// at most two tenths of the limit frozen beyond what was really in use.
func ceilingHeadroom(limit int) int { return max(2, limit/10) }

// Coordinator leases slices of every pool's limit to nodes. One runs on
// the Raft leader; a new leader starts a new one with a higher epoch.
//
// Invariant: at any time t, for every pool the sum over nodes of
// charge(node, t) is at most the pool's limit (but see below for limits
// that shrink), and for every account the sum over all its pools is at
// most the account's limit and at most its committed ceiling. charge
// bounds the invocations the node may be running in the pool at t: the
// largest of the in-flight count it last reported (until MaxRun after
// that report) and the slots of every grant it may still hold or have
// admitted under (until MaxRun after that grant's expiry). A new grant is
// only ever the room those bounds leave after the other nodes' charges;
// the ceiling is raised (and committed) before a grant may use the room
// above it.
//
// When a limit shrinks (an account limit lowered, a reservation taken out
// of the unreserved pool), slices granted before are not revoked: the
// pool drains to its new limit as they are renewed smaller (within a
// renewal interval, at most LeaseTTL) and their invocations end; the
// account-wide sum holds throughout, because every grant also fits the
// account limit.
//
// A new coordinator does not know its predecessor's grants, only that
// they total at most the predecessor's committed ceiling. Until every
// node that may hold one has told it everything it holds (a full renewal
// from an incarnation with no unknown earlier life: a clean start, or one
// that began MaxRun ago), and at most for LeaseTTL + MaxRun +
// LeaderMargin, it is in a grace period in which it counts the part of
// that ceiling the nodes heard from do not account for as in use by
// unknown holders: against the account, and against each pool at most the
// pool's limit less what the nodes heard from reported of it (so a
// reported slice of a small reserved pool is renewed at once; a pool limit
// lowered just before the leader change drains as any lowered limit does). Everything else under the limits is shared out at
// once; in a healthy cluster every node renews within a second of a
// leader change, which ends the grace period.
//
// Fallback: a node cut off from the coordinator once its lease of a pool
// ran out admits up to its fair share of the pool, the limit over
// HolderNodes (LeaseConfig.FairShareNodes). So charge counts, for a holder
// that may be doing so, at least that share: from when the oldest grant it
// may hold expired, while it is still the incarnation that last reported
// and still one of HolderNodes (a dead node keeps its share set aside
// until it leaves the cluster). Nodes a coordinator never heard from are
// charged their share in every pool once its longest grace period ended.
// One case is not covered: a node cut off across a leader change, while
// the new coordinator's grace period lasts, may admit its share on top of
// what the predecessor's ceiling accounts for (the simulation with both
// found the limit exceeded by 2 of 50 in one seed of 80).
//
// All methods are safe for concurrent use. Times are passed in, so the
// coordinator itself reads no clock.
type Coordinator struct {
	cfg      CoordinatorConfig
	limits   Limits
	ceilings Ceilings
	epoch    uint64
	start    time.Time

	mu       sync.Mutex
	seq      uint64
	pools    map[Pool]map[string]*holder
	checkins map[string]checkin // node id -> its latest full renewal
	accounts map[string]*accountState
}

// accountState is the coordinator's side of an account's ceiling.
type accountState struct {
	// pred is the ceiling a predecessor left (0 when none): a bound on
	// what it may have granted. -1 until first read.
	pred int
	// proposed is the last ceiling this coordinator proposed (-1: none);
	// grants stay under it as well as under the committed one, so a
	// lowered ceiling binds from the moment it is proposed and a raised
	// one from the moment it is committed.
	proposed     int
	pendingSince time.Time // zero: no proposal in flight
	effective    int       // min(committed, proposed), refreshed per renewal
}

// checkin is what a full renewal told about a node's incarnation.
type checkin struct {
	incarnation string
	started     time.Time // by this coordinator's clock
	clean       bool
	at          time.Time // when the renewal arrived
}

// holder is one node's standing in one pool.
type holder struct {
	node, incarnation string
	want              int
	inflight          int
	reported          time.Time
	// grants this coordinator issued to the node that it may still hold,
	// oldest first.
	grants []issued
	// legacy is the grant of an earlier coordinator the node reported
	// holding (until the node holds one of ours); legacyCharge is the least
	// the predecessor must have charged it (held slots or in flight), the
	// part of the predecessor's ceiling known not to be unknown holders'.
	legacy       issued
	legacyCharge int
}

type issued struct {
	seq    uint64
	slots  int
	expiry time.Time
}

// NewCoordinator starts a coordinator for epoch (the Raft term of the
// leadership it serves) at now. ceilings must already reflect every
// ceiling a predecessor committed (the node starts it once its Raft
// replica applied every entry of earlier terms).
func NewCoordinator(cfg CoordinatorConfig, limits Limits, ceilings Ceilings, epoch uint64, now time.Time) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, limits: limits, ceilings: ceilings, epoch: epoch, start: now,
		pools: map[Pool]map[string]*holder{}, checkins: map[string]checkin{}, accounts: map[string]*accountState{}}, nil
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
		c.checkins[r.Holder.Node] = checkin{incarnation: r.Holder.Incarnation, started: now.Add(-r.Holder.Age), clean: r.Holder.CleanStart, at: now}
	}
	nodes := c.limits.HolderNodes()
	out := make([]Grant, 0, len(r.Demands))
	for _, d := range r.Demands {
		out = append(out, c.renewLocked(r.Holder, d, nodes, now))
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

func (c *Coordinator) renewLocked(from Holder, d Demand, nodes []string, now time.Time) Grant {
	node := from.ID()
	limit, maxRun, ok := c.limits.PoolLimit(d.Pool)
	if !ok {
		limit = 0
	}
	holders := c.pools[d.Pool]
	if holders == nil {
		holders = map[string]*holder{}
		c.pools[d.Pool] = holders
	}
	c.expireLocked(holders, now, maxRun, c.fairShareOf(limit, nodes), nodes)
	h := holders[node]
	if h == nil {
		h = &holder{node: from.Node, incarnation: from.Incarnation}
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

	floor := c.fairShareOf(limit, nodes)
	others := c.unheardLocked(nodes, from.Node, now, maxRun) * floor
	for id, o := range holders {
		if id != node {
			others += c.chargeLocked(o, now, maxRun, floor, nodes)
		}
	}
	acct := d.Pool.AccountID
	limitA := c.limits.AccountLimit(acct)
	// The account's pools together stay within the account limit too:
	// when a reservation is created the unreserved pool's limit drops at
	// once, but slices granted before are only renewed smaller within a
	// renewal interval, and their invocations run on; the reserved pool
	// waits for them rather than push the account over its limit.
	othersA := c.accountChargeLocked(d.Pool, node, from.Node, nodes, now)
	st := c.accountStateLocked(acct, now)
	grace := c.inGraceLocked(now, maxRun)
	unknown, unknownHere := 0, 0
	if grace {
		// What the predecessor may have granted to holders not heard
		// from: at most its ceiling for the account less what the nodes
		// heard from reported, and in this pool also at most the pool's
		// limit less what they reported of it (a node that reports the
		// slice of a small pool it held keeps it).
		unknown = max(0, st.pred-c.legacyChargeLocked(acct))
		reported := 0
		for _, o := range holders {
			reported += o.legacyCharge
		}
		unknownHere = min(unknown, max(0, limit-reported))
	}
	want := min(h.want, c.fairShareLocked(holders, node, limit, now))
	byLimits := min(limit-others-unknownHere, limitA-othersA-unknown)
	slots := max(min(want, byLimits, st.effective-othersA-unknown), 0)
	raising := false
	if fits := max(min(want, byLimits), 0); fits > slots {
		// Only the ceiling holds the grant back: raise it, with headroom.
		raising = c.proposeLocked(acct, st, min(limitA, othersA+unknown+fits+ceilingHeadroom(limitA)), now)
	}
	c.seq++
	h.grants = append(h.grants, issued{seq: c.seq, slots: slots, expiry: now.Add(c.cfg.LeaseTTL)})
	total := max(othersA+h.charge(now, maxRun), c.wantedLocked(acct, now)) + unknown
	if st.effective > total+2*ceilingHeadroom(limitA) {
		// Demand fell: lower the ceiling, so that a successor finds little
		// of the account frozen. Demand is what is charged and also what
		// the holders that reported within ActiveFor asked for: a ceiling
		// raised for one node's ask is charged only once that node comes
		// back for the grant, and lowering it before then, on a renewal of
		// another node or another pool, undid the raise for as long as the
		// renewals interleaved (TestARaiseIsNotUndoneBeforeItIsUsed).
		c.proposeLocked(acct, st, total+ceilingHeadroom(limitA), now)
	}
	// The pool's invocations leave room, but idle slices elsewhere hold
	// it: they shrink at their holders' next renewals (a second), so say
	// more may come, and the node waits instead of throttling below the
	// limit.
	rebalancing := slots < h.want && c.reclaimableLocked(holders, limit, now, maxRun, floor, nodes)
	return Grant{Pool: d.Pool, ID: GrantID{Epoch: c.epoch, Seq: c.seq}, Slots: slots, TTL: c.cfg.LeaseTTL,
		Retry: slots < h.want && (grace || raising || rebalancing || !st.pendingSince.IsZero())}
}

// accountStateLocked refreshes an account's ceiling state from the
// committed ceiling.
func (c *Coordinator) accountStateLocked(acct string, now time.Time) *accountState {
	st := c.accounts[acct]
	if st == nil {
		st = &accountState{pred: -1, proposed: -1}
		c.accounts[acct] = st
	}
	committed, epoch := c.ceilings.Ceiling(acct)
	if st.pred < 0 {
		st.pred = 0
		if epoch < c.epoch {
			st.pred = committed
		}
	}
	if !st.pendingSince.IsZero() && ((epoch == c.epoch && committed == st.proposed) || now.Sub(st.pendingSince) > c.cfg.ProposalTimeout) {
		st.pendingSince = time.Time{}
	}
	st.effective = committed
	if epoch > c.epoch {
		st.effective = 0 // a newer coordinator moved it: this one is deposed
	}
	if st.proposed >= 0 {
		st.effective = min(st.effective, st.proposed)
	}
	return st
}

// proposeLocked proposes ceiling for acct unless a proposal is in flight or
// it would change nothing; it reports whether it proposed.
func (c *Coordinator) proposeLocked(acct string, st *accountState, ceiling int, now time.Time) bool {
	committed, _ := c.ceilings.Ceiling(acct)
	if !st.pendingSince.IsZero() || ceiling == committed {
		return false
	}
	st.proposed, st.pendingSince = ceiling, now
	st.effective = min(st.effective, ceiling)
	c.ceilings.Propose(acct, ceiling, c.epoch)
	return true
}

// wantedLocked sums, over the account's pools, what the holders that
// reported within ActiveFor want (at most each pool's limit).
func (c *Coordinator) wantedLocked(acct string, now time.Time) int {
	n := 0
	for q, holders := range c.pools {
		if q.AccountID != acct {
			continue
		}
		want := 0
		for _, h := range holders {
			if now.Sub(h.reported) <= c.cfg.ActiveFor {
				want += h.want
			}
		}
		limit, _, ok := c.limits.PoolLimit(q)
		if !ok {
			limit = 0
		}
		n += min(want, limit)
	}
	return n
}

// legacyChargeLocked sums what the account's holders reported holding
// from a predecessor.
func (c *Coordinator) legacyChargeLocked(acct string) int {
	n := 0
	for q, holders := range c.pools {
		if q.AccountID == acct {
			for _, h := range holders {
				n += h.legacyCharge
			}
		}
	}
	return n
}

// accountChargeLocked sums the charges of every pool of p's account,
// leaving out node's charge in p.
func (c *Coordinator) accountChargeLocked(p Pool, node, self string, nodes []string, now time.Time) int {
	n := 0
	for q, holders := range c.pools {
		if q.AccountID != p.AccountID {
			continue
		}
		limit, maxRun, ok := c.limits.PoolLimit(q)
		if !ok {
			limit = 0
		}
		floor := c.fairShareOf(limit, nodes)
		n += c.unheardLocked(nodes, self, now, maxRun) * floor
		for id, h := range holders {
			if q != p || id != node {
				n += c.chargeLocked(h, now, maxRun, floor, nodes)
			}
		}
	}
	return n
}

// unheardLocked counts the nodes other than self that may hold leases and
// have not reported to this coordinator since the longest grace period
// ended: each may be cut off and admitting on its fair share of every
// pool (LeaseConfig.FairShareNodes), so each is charged that share until
// it reports. During the grace period the predecessor's ceiling stands in
// for them (charging their shares on top would starve the nodes that
// report what they held).
func (c *Coordinator) unheardLocked(nodes []string, self string, now time.Time, maxRun time.Duration) int {
	if now.Before(c.start.Add(c.cfg.LeaseTTL + maxRun + c.cfg.LeaderMargin)) {
		return 0
	}
	n := 0
	for _, id := range nodes {
		if _, ok := c.checkins[id]; !ok && id != self {
			n++
		}
	}
	return n
}

// fairShareOf is a node's fallback share of a pool's limit: what a node
// cut off from the coordinator admits once its lease ran out
// (LeaseConfig.FairShareNodes), 0 when no nodes are known.
func (c *Coordinator) fairShareOf(limit int, nodes []string) int {
	if len(nodes) == 0 {
		return 0
	}
	return limit / len(nodes)
}

// chargeLocked is h's charge, at least the pool's fair share floor while
// h may be admitting on it: h's node is one of nodes, h is the
// incarnation that last reported and it reported the pool then (a node
// that dropped the pool, or restarted, holds nothing of it), and a grant
// h may hold has expired. The node's own clock starts the fallback only
// after the grant it holds would have expired here: the answer carrying
// it arrived after its request did.
func (c *Coordinator) chargeLocked(h *holder, now time.Time, maxRun time.Duration, floor int, nodes []string) int {
	n := h.charge(now, maxRun)
	if floor <= n {
		return n
	}
	ci, ok := c.checkins[h.node]
	if !ok || ci.incarnation != h.incarnation || h.reported.Before(ci.at) || !slices.Contains(nodes, h.node) {
		return n
	}
	// The node holds the oldest grant it was not yet known to hold or a
	// newer one (it reported holding that one, or its answer went astray).
	if len(h.grants) > 0 && now.Before(h.grants[0].expiry) {
		return n
	}
	if now.Before(h.legacy.expiry) {
		return n
	}
	return floor
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
func (c *Coordinator) expireLocked(holders map[string]*holder, now time.Time, maxRun time.Duration, floor int, nodes []string) {
	for id, h := range holders {
		h.grants = slices.DeleteFunc(h.grants, func(g issued) bool { return !now.Before(g.expiry.Add(maxRun)) })
		if len(h.grants) == 0 && c.chargeLocked(h, now, maxRun, floor, nodes) == 0 && now.Sub(h.reported) > c.cfg.ActiveFor {
			delete(holders, id)
		}
	}
}

// fairShareLocked is node's max-min fair share of limit among the nodes
// that reported demand within ActiveFor: every node gets what it wants if
// the wants fit, else the wants above a common level are cut to it. The
// shares are whole slots that add up to at most limit: the level's
// remainder goes one slot each to some of the nodes cut to it, chosen by
// a rotation that moves every LeaseTTL, so no node is left out for good
// when there are more nodes than slots. (Shares that add up to more than
// the limit starve whoever asks last: the others keep what they hold.)
func (c *Coordinator) fairShareLocked(holders map[string]*holder, node string, limit int, now time.Time) int {
	type demand struct {
		id   string
		want int
	}
	var wants []demand
	total := 0
	for id, h := range holders {
		if id == node || now.Sub(h.reported) <= c.cfg.ActiveFor {
			wants = append(wants, demand{id, h.want})
			total += h.want
		}
	}
	mine := holders[node].want
	if total <= limit {
		return mine
	}
	slices.SortFunc(wants, func(a, b demand) int {
		if a.want != b.want {
			return a.want - b.want
		}
		return strings.Compare(a.id, b.id)
	})
	left := limit
	for i, w := range wants {
		rest := len(wants) - i
		level := left / rest
		if w.want <= level {
			if w.id == node {
				return mine
			}
			left -= w.want
			continue
		}
		// wants[i:] are all cut to level; left%rest of them get one more.
		cut := wants[i:]
		slices.SortFunc(cut, func(a, b demand) int { return strings.Compare(a.id, b.id) })
		turn := int(now.UnixNano() / int64(c.cfg.LeaseTTL) % int64(rest))
		for j, d := range cut {
			if d.id == node {
				if (j-turn+rest)%rest < left%rest {
					return level + 1
				}
				return level
			}
		}
	}
	return mine
}

// reclaimableLocked reports whether the pool's slices, not its
// invocations, are what is full: the in-flight counts the holders last
// reported leave room under limit, so slices held idle elsewhere will come
// back at their holders' next renewals. A holder that stopped reporting
// (dead, cut off) renews nothing: all it is charged counts as running.
func (c *Coordinator) reclaimableLocked(holders map[string]*holder, limit int, now time.Time, maxRun time.Duration, floor int, nodes []string) bool {
	running := 0
	for _, h := range holders {
		if now.Sub(h.reported) <= c.cfg.ActiveFor {
			running += h.inflight
		} else {
			running += c.chargeLocked(h, now, maxRun, floor, nodes)
		}
	}
	return running < limit
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
	limit, maxRun, ok := c.limits.PoolLimit(p)
	if !ok {
		limit = 0
	}
	nodes := c.limits.HolderNodes()
	floor := c.fairShareOf(limit, nodes)
	n := 0
	for _, h := range c.pools[p] {
		n += c.chargeLocked(h, now, maxRun, floor, nodes)
	}
	return n + c.unheardLocked(nodes, "", now, maxRun)*floor
}
