package placement

import (
	"fmt"
	"slices"
)

// gib is a node weight of n GiB of sandbox memory, in MiB as Stoke weighs
// nodes.
func gib(n int) uint32 { return uint32(n * 1024) }

// nodes returns n members "node-0".."node-<n-1>" of 8 GiB each.
func nodes(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("node-%d", i), Weight: gib(8)}
	}
	return ms
}

// keys returns n function version identities shaped like Stoke's.
func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("123456789012/fn-%d/%d", i/4, i%4)
	}
	return ks
}

// without returns ms minus the members whose IDs are listed.
func without(ms []Member, ids ...string) []Member {
	return slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return slices.Contains(ids, m.ID) })
}

// liveExcept is a liveness function under which the listed IDs are dead.
func liveExcept(ids ...string) func(string) bool {
	return func(id string) bool { return !slices.Contains(ids, id) }
}
