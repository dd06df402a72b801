package placement

import "math"

// LoadView reports each node's current load as the caller sees it: in
// Stoke, the invocations in flight on the node that the caller knows of.
// Only the ratios between loads matter, so any unit of work in which one
// placement adds 1 will do. Place reads it once per live member per call;
// it must not change during a call (pass a snapshot if other goroutines
// update it).
type LoadView interface {
	// Load returns node id's current load. Unknown nodes return 0;
	// negative values are treated as 0.
	Load(id string) int
}

// LoadMap is a LoadView backed by a map from node id to load.
type LoadMap map[string]int

// Load returns m[id].
func (m LoadMap) Load(id string) int { return m[id] }

// Place returns up to n live members to try for key, in order: key's
// preference list (see Preferred) with the members that have no room
// under the load bound moved, in their ring order, behind those that do.
// The caller tries the first and falls back along the list; when the home
// shard has room it comes first, and otherwise the key spills clockwise to
// the next member that has room, as in consistent hashing with bounded
// loads.
//
// A member m has room when placing one more unit on it keeps it within
// its bound:
//
//	load(m) + 1 <= ceil(c × (L + 1) × w(m) / W)
//
// where c is Config.LoadFactor, L the total load and W the total weight of
// the live members. Because the bounds add up to at least c × (L + 1) > L,
// some live member always has room, and Place walks as far as it must to
// put one first. So if the caller places each unit on the first member
// returned and feeds loads back, no member ever ends a placement above its
// bound (TestPlaceNeverExceedsBound).
//
// loads may be nil (all loads 0, so Place returns Preferred's order); live
// is as in Preferred. The result is nil if n <= 0 or no member is live,
// and deterministic: the same ring, key, loads and liveness give the same
// list on every node. Cost: O(members) to total the loads and weights,
// plus a walk of the ring; one allocation for the result when the ring has
// at most 256 members.
func (r *Ring) Place(key string, n int, loads LoadView, live func(id string) bool) []string {
	if n <= 0 || len(r.points) == 0 {
		return nil
	}

	// One pass over the members for liveness and totals; state[m] is
	// member m's load, or -1 if it is not live.
	var stateBuf [smallMembers]int
	state := stateBuf[:0]
	if len(r.members) > len(stateBuf) {
		state = make([]int, 0, len(r.members))
	}
	liveCount, totalLoad, liveWeight := 0, 0, 0.0
	for m, mem := range r.members {
		if live != nil && !live(mem.ID) {
			state = append(state, -1)
			continue
		}
		load := 0
		if loads != nil {
			load = max(loads.Load(mem.ID), 0)
		}
		state = append(state, load)
		liveCount++
		totalLoad += load
		liveWeight += r.weights[m]
	}
	if liveCount == 0 {
		return nil
	}
	n = min(n, liveCount)
	scaled := r.cfg.LoadFactor * float64(totalLoad+1)
	hasRoom := func(m uint32) bool { return withinBound(state[m], scaled, r.weights[m], liveWeight) }

	out := make([]string, 0, n)
	var overBuf [8]uint32
	over := overBuf[:0] // members without room, in ring order, at most n
	var seenBuf [smallMembers / 64]uint64
	seen := newBitset(seenBuf[:], len(r.members))
	visited := 0 // live members met so far
	for i, s := 0, r.start(key); i < len(r.points) && len(out) < n && visited < liveCount; i++ {
		m := r.owners[(s+i)%len(r.points)]
		if seen.testAndSet(m) || state[m] < 0 {
			continue
		}
		visited++
		if hasRoom(m) {
			out = append(out, r.members[m].ID)
		} else if len(over) < n {
			over = append(over, m)
		}
	}
	for _, m := range over {
		if len(out) == n {
			break
		}
		out = append(out, r.members[m].ID)
	}
	return out
}

// withinBound reports whether a member of weight w with load load may
// take one more unit: load + 1 <= ceil(scaled × w / W), where scaled is
// c × (L + 1) and W the live weight. Place and HasRoom both decide with
// it, so a node checking its own bound agrees with the node that placed
// work on it.
//
// Multiply before dividing: c × (L+1) × w is exact for the loads and
// weights met in practice and IEEE division rounds correctly, so the
// bound is exact whenever it is a whole number and ceil cannot round it
// up by mistake.
func withinBound(load int, scaled, w, liveWeight float64) bool {
	return float64(load+1) <= math.Ceil(scaled*w/liveWeight)
}
