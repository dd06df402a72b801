// Package cluster turns nodes into one Stoke cluster: Raft (hashicorp/raft
// with raft-boltdb on disk) replicating the fsm, gossip membership
// (hashicorp/memberlist) with node metadata and load, the leader's
// reconcile loop that keeps the Raft configuration and the node records in
// step with gossip, bootstrap-expect, and node-to-node gRPC (forwarding to
// the leader, status, peer removal) secured by mutual TLS and the cluster
// token, with keepalive so a silently cut peer fails calls instead of
// stalling them. Recover rewrites a stopped server's Raft configuration
// after a permanent loss of quorum (`stoke cluster recover`).
//
// It exposes a narrow API: Apply(ctx, cmd) proposes a command and returns the
// FSM's result or a typed error (ErrNotLeader, ErrTimeout, or an *fsm.Error
// such as a precondition failure), and reads at a stated consistency: the
// local replica (stale, for the invoke path) or leader-verified (for
// control-plane reads that must observe every acknowledged write). Gossip
// answers Members, IsAlive (cheap enough for every invocation) and
// Subscribe; errors that cross gRPC come back as the same sentinels.
package cluster
