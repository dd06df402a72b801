// Package cluster turns nodes into one Stoke cluster: Raft (hashicorp/raft
// with raft-boltdb on disk) replicating the fsm, and later gossip membership,
// leader forwarding and the leader's reconcile loop.
//
// It exposes a narrow API: Apply(ctx, cmd) proposes a command and returns the
// FSM's result or a typed error (ErrNotLeader, ErrTimeout, or an *fsm.Error
// such as a precondition failure), and reads at a stated consistency: the
// local replica (stale, for the invoke path) or leader-verified (for
// control-plane reads that must observe every acknowledged write).
package cluster
