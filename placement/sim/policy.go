package sim

import "fmt"

// Policy chooses the nodes an invocation may run on.
type Policy int

const (
	// BoundedRing is Stoke's placement: the ring's preference list with
	// bounded loads (placement.Ring.Place) over the nodes' in-flight
	// invocations; the home shard first while it is within its bound.
	BoundedRing Policy = iota
	// PlainRing is consistent hashing without bounds: the preference list
	// alone (placement.Ring.Preferred), the home shard always first.
	PlainRing
	// Random tries distinct nodes in a uniformly random order, the
	// baseline a placement-unaware load balancer gives.
	Random
)

// Policies lists every policy, in report order.
var Policies = []Policy{BoundedRing, PlainRing, Random}

// String names the policy in reports.
func (p Policy) String() string {
	switch p {
	case BoundedRing:
		return "bounded-ring"
	case PlainRing:
		return "plain-ring"
	case Random:
		return "random"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}
