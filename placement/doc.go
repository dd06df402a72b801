// Package placement decides where invocations run: a consistent-hash ring
// with bounded loads over the nodes committed in Raft, filtered by gossip
// liveness and weighted by capacity. A function version maps to an ordered
// list of preferred nodes; the first live one is its home shard.
//
// The package is pure: it computes over a view of nodes and load it is
// given, holds no sockets and starts no goroutines, so it is tested and
// simulated without a cluster.
package placement
