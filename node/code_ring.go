package node

import (
	"strconv"
	"strings"
	"sync"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/placement"
)

// codePlacementKey is the ring key a function's code replicas are placed
// along. The issue asks for the function's preferred nodes; the invoke
// path keys versions as "account/function/version", so this is the one
// place to change if code should follow a version's home instead.
func codePlacementKey(accountID, function string) string {
	return accountID + "/" + function
}

// codeRing builds the consistent-hash ring from the committed node
// records and caches it until they change. It stands in for the ring the
// invoke path keeps (routing work in progress): both are built with
// placement.NewRing from the same records and weights, so swapping this
// for theirs changes nothing but the owner.
type codeRing struct {
	mu   sync.Mutex
	sig  string
	ring *placement.Ring
}

// get returns the ring of the nodes committed in v.
func (c *codeRing) get(v *fsm.View) *placement.Ring {
	nodes := v.Nodes()
	members := make([]placement.Member, 0, len(nodes))
	var sig strings.Builder
	for _, n := range nodes {
		// Nodes are weighed by memory, as placement.Config expects; a
		// record without it still takes part.
		w := uint32(max(min(n.MemoryMb, 1<<30), 1))
		members = append(members, placement.Member{ID: n.Id, Weight: w})
		sig.WriteString(n.Id + "=" + strconv.FormatUint(uint64(w), 10) + ";")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil || c.sig != sig.String() {
		c.ring, c.sig = placement.NewRing(members, placement.DefaultConfig()), sig.String()
	}
	return c.ring
}
