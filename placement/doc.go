// Package placement decides where invocations run: a consistent-hash ring
// with bounded loads over the nodes committed in Raft, filtered by gossip
// liveness and weighted by capacity. A function version maps to an ordered
// list of preferred nodes; the first live one is its home shard, where its
// warm sandboxes gather.
//
// Every node builds the same Ring from the same Raft-committed member list
// (NewRing is independent of the list's order), so any node that receives
// an invocation computes the same home without asking anyone. Each member
// owns virtual nodes (points) in proportion to its weight, placed by a
// 64-bit hash of its id alone, so a join or leave moves only the keys
// whose arcs the member gains or loses, about 1/N of them. Liveness is a
// filter applied at lookup time: a node gossip reports dead is skipped
// exactly as if it had been removed from the ring, so routing reacts at
// gossip speed while the ring itself changes only when Raft commits a
// membership change. Preferred gives the pure preference order; Place
// adds bounded loads (Mirrokni, Thorup, Zadimoghaddam), moving nodes that
// are more than LoadFactor above their weighted share of the current load
// behind those that are not, so a hot function spills to the next nodes
// along the ring instead of overloading its home. docs/placement.md
// describes the design and its measured balance and movement.
//
// The package is pure: it computes over the members, loads and liveness
// it is given, reads no clock, holds no sockets and starts no goroutines
// (TestPackageIsPure guards this), so it is tested and simulated without a
// cluster; placement/sim replays invocation traces through it. A Ring is
// immutable and safe for concurrent use.
package placement
