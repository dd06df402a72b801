package placement

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
)

// Member is a node as the ring sees it: an id and a capacity weight, as
// committed in Raft so that every node builds the ring from the same list.
type Member struct {
	// ID identifies the node; it is what Preferred and Place return.
	// Members with an empty ID are ignored.
	ID string
	// Weight is the node's capacity in the unit of Config.ReferenceWeight
	// (Stoke uses the sandbox memory budget in MiB). A member's share of
	// the keys is proportional to its weight. A member of weight 0 owns no
	// part of the ring and is left out, as if it were not listed.
	Weight uint32
}

// Ring is an immutable consistent-hash ring with weighted virtual nodes.
//
// A Ring is safe for concurrent use by any number of goroutines: no method
// modifies it. To change the members, build a new Ring and swap it in
// (an atomic.Pointer in the caller works well); Equal and Fingerprint tell
// whether a rebuild changed anything.
type Ring struct {
	cfg     Config
	members []Member  // sorted by ID, unique, Weight > 0
	weights []float64 // weights[m] = float64(members[m].Weight)
	// points and owners are parallel and sorted by (point, member ID):
	// owners[i] is the index in members of the node owning points[i].
	points      []uint64
	owners      []uint32
	totalWeight float64
	fingerprint uint64
}

// NewRing builds the ring of members under cfg.
//
// The result depends only on the set of members and cfg, not on the order
// of the slice: every node that is given the same members in any order
// builds a ring that places every key identically. Members with an empty
// ID or weight 0 are dropped; when an ID is listed more than once, the
// largest weight wins. members is not retained.
//
// NewRing panics if cfg.Validate fails: the configuration is checked once
// at startup, and a ring built from a bad one would be meaningless.
// Building costs O(P log P) for P points in all (about 10 ms for 100 nodes
// of 16 GiB under DefaultConfig); do it when membership changes, not per
// invocation.
func NewRing(members []Member, cfg Config) *Ring {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	r := &Ring{cfg: cfg}
	r.members = normalizeMembers(members)
	r.weights = make([]float64, len(r.members))

	total := 0
	counts := make([]int, len(r.members))
	for m, mem := range r.members {
		r.weights[m] = float64(mem.Weight)
		r.totalWeight += r.weights[m]
		counts[m] = pointCount(mem.Weight, cfg)
		total += counts[m]
	}

	type point struct {
		hash  uint64
		owner uint32
	}
	pts := make([]point, 0, total)
	for m, mem := range r.members {
		idHash := fnv1a(fnvOffset64, mem.ID)
		for i := 0; i < counts[m]; i++ {
			pts = append(pts, point{hash: pointHash(idHash, i), owner: uint32(m)})
		}
	}
	// Ties between points of different members (probability about
	// P^2/2^65) are broken by member ID, which is the same everywhere;
	// members are sorted by ID, so comparing indexes compares IDs.
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	r.points = make([]uint64, len(pts))
	r.owners = make([]uint32, len(pts))
	for i, p := range pts {
		r.points[i] = p.hash
		r.owners[i] = p.owner
	}
	r.fingerprint = fingerprint(r.members, cfg)
	return r
}

// normalizeMembers returns the members sorted by ID with empty IDs and
// zero weights dropped and duplicates merged to their largest weight.
func normalizeMembers(in []Member) []Member {
	out := make([]Member, 0, len(in))
	for _, m := range in {
		if m.ID != "" && m.Weight > 0 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return -cmp.Compare(a.Weight, b.Weight) // heaviest first, kept below
	})
	return slices.CompactFunc(out, func(a, b Member) bool { return a.ID == b.ID })
}

// pointCount is how many virtual nodes a member of weight w owns.
func pointCount(w uint32, cfg Config) int {
	ref := uint64(cfg.ReferenceWeight)
	n := (uint64(w)*uint64(cfg.VirtualNodes) + ref/2) / ref
	n = max(n, 1)
	n = min(n, 64*uint64(cfg.VirtualNodes))
	return int(n)
}

// fingerprint hashes everything that determines a ring's answers.
func fingerprint(members []Member, cfg Config) uint64 {
	var buf [8]byte
	h := uint64(fnvOffset64)
	word := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h = fnv1a(h, string(buf[:]))
	}
	word(uint64(cfg.VirtualNodes))
	word(uint64(cfg.ReferenceWeight))
	word(math.Float64bits(cfg.LoadFactor))
	word(uint64(len(members)))
	for _, m := range members {
		word(uint64(len(m.ID))) // length-prefixed so IDs cannot run together
		h = fnv1a(h, m.ID)
		word(uint64(m.Weight))
	}
	return fmix64(h)
}

// Config returns the configuration the ring was built with.
func (r *Ring) Config() Config { return r.cfg }

// Members returns the ring's members sorted by ID, after NewRing dropped
// and merged entries. The slice is a copy.
func (r *Ring) Members() []Member { return slices.Clone(r.members) }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Fingerprint is a 64-bit digest of the members, their weights and the
// Config. Rings that place keys differently have different fingerprints
// (up to hash collisions); nodes can exchange it to check that they agree
// on the ring.
func (r *Ring) Fingerprint() uint64 { return r.fingerprint }

// Equal reports whether r and o were built from the same members and
// Config, and so answer every query identically. Cheap when they differ
// (fingerprints), O(members) when they do not.
func (r *Ring) Equal(o *Ring) bool {
	if r == o {
		return true
	}
	if r == nil || o == nil {
		return false
	}
	return r.fingerprint == o.fingerprint && r.cfg == o.cfg && slices.Equal(r.members, o.members)
}

// start is the index of the first point at or clockwise after key's hash.
func (r *Ring) start(key string) int {
	i, _ := slices.BinarySearch(r.points, hashKey(key))
	if i == len(r.points) {
		i = 0
	}
	return i
}

// Preferred returns the first n distinct live members met walking the ring
// clockwise from key's hash: key's preference list. The first is key's
// home shard. Key is a function version's identity, e.g.
// "account/function/version".
//
// live reports gossip liveness; a member for which it returns false is
// skipped, and the result is exactly what a ring built without that
// member would return, so a dead node is routed around before the
// membership change is committed. live is called at most once per member
// and may be nil (every member live). The result has fewer than n entries
// when fewer members are live, and is nil if n <= 0.
//
// Cost: a binary search plus a walk of about n points when most members
// are live; one allocation, for the result.
func (r *Ring) Preferred(key string, n int, live func(id string) bool) []string {
	if n <= 0 || len(r.points) == 0 {
		return nil
	}
	n = min(n, len(r.members))
	out := make([]string, 0, n)
	var buf [smallMembers / 64]uint64
	seen := newBitset(buf[:], len(r.members))
	distinct := 0
	for i, s := 0, r.start(key); i < len(r.points) && len(out) < n && distinct < len(r.members); i++ {
		m := r.owners[(s+i)%len(r.points)]
		if seen.testAndSet(m) {
			continue
		}
		distinct++
		if id := r.members[m].ID; live == nil || live(id) {
			out = append(out, id)
		}
	}
	return out
}

// Home returns key's home shard, the first entry of Preferred(key, 1,
// live), without allocating. ok is false when no member is live.
func (r *Ring) Home(key string, live func(id string) bool) (id string, ok bool) {
	if len(r.points) == 0 {
		return "", false
	}
	var buf [smallMembers / 64]uint64
	seen := newBitset(buf[:], len(r.members))
	distinct := 0
	for i, s := 0, r.start(key); i < len(r.points) && distinct < len(r.members); i++ {
		m := r.owners[(s+i)%len(r.points)]
		if seen.testAndSet(m) {
			continue
		}
		distinct++
		if id := r.members[m].ID; live == nil || live(id) {
			return id, true
		}
	}
	return "", false
}

// smallMembers is the member count up to which per-call scratch space
// lives on the stack.
const smallMembers = 256

// bitset marks member indexes during a walk.
type bitset []uint64

// newBitset returns a zeroed bitset of n bits backed by buf when it is
// large enough, so that small rings walk without allocating.
func newBitset(buf []uint64, n int) bitset {
	words := (n + 63) / 64
	if words <= len(buf) {
		clear(buf[:words])
		return buf[:words]
	}
	return make(bitset, words)
}

// testAndSet sets bit i and reports whether it was already set.
func (b bitset) testAndSet(i uint32) bool {
	w, bit := i/64, uint64(1)<<(i%64)
	if b[w]&bit != 0 {
		return true
	}
	b[w] |= bit
	return false
}
