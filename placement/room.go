package placement

import (
	"slices"
	"strings"
)

// HasRoom reports whether member id may take one more unit of load under
// the bound Place applies (see Place): whether
//
//	load(id) + 1 <= ceil(c × (L + 1) × w(id) / W)
//
// with L and W the total load and weight of the live members. A member that
// is not in the ring or not live has no room. A node uses it to check its
// own bound, with its exact load, before it takes an invocation another
// node placed on it. Cost: O(members) LoadView and live calls.
func (r *Ring) HasRoom(id string, loads LoadView, live func(id string) bool) bool {
	me, found := slices.BinarySearchFunc(r.members, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
	if !found || (live != nil && !live(id)) {
		return false
	}
	total, weight, mine := 0, 0.0, 0
	for m, mem := range r.members {
		if live != nil && !live(mem.ID) {
			continue
		}
		load := 0
		if loads != nil {
			load = max(loads.Load(mem.ID), 0)
		}
		total += load
		weight += r.weights[m]
		if m == me {
			mine = load
		}
	}
	return withinBound(mine, r.cfg.LoadFactor*float64(total+1), r.weights[me], weight)
}
