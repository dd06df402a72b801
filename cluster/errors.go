package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

var (
	// ErrNotLeader: this node cannot accept the write or leader read; the
	// caller should go to the leader (LeaderError says where, when known).
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrNoLeader: the cluster has no leader right now (election running
	// or quorum lost).
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrTimeout: the command's outcome is unknown; it may still commit.
	// Retrying with the same request id is safe.
	ErrTimeout = errors.New("cluster: timed out; outcome unknown")
	// ErrLeadershipLost: the leader was deposed while the command was in
	// flight; its outcome is unknown. Retrying with the same request id is safe.
	ErrLeadershipLost = errors.New("cluster: leadership lost; outcome unknown")
	// ErrShutdown: the local Raft node is shutting down.
	ErrShutdown = errors.New("cluster: shutting down")
	// ErrAlreadyBootstrapped: the node has Raft state; bootstrapping again
	// would fork the cluster, so it was not done.
	ErrAlreadyBootstrapped = errors.New("cluster: raft state exists; not bootstrapping")
	// ErrStateLocked: another process (an agent still running on the data
	// dir) holds the Raft state open.
	ErrStateLocked = errors.New("cluster: the Raft state is locked by another process (is an agent still running on this data dir?)")
	// ErrNoState: the data dir holds no Raft state to recover.
	ErrNoState = errors.New("cluster: no Raft state in the data dir")
)

// LeaderError is ErrNotLeader with the leader's identity, when known.
type LeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *LeaderError) Error() string {
	if e.LeaderAddr == "" {
		return ErrNotLeader.Error() + " (leader unknown)"
	}
	return fmt.Sprintf("%s (leader %s at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

func (e *LeaderError) Unwrap() error { return ErrNotLeader }

// translate maps raft's errors onto this package's, so a raft error never
// travels further than cluster.
func (r *Raft) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNotVoter):
		addr, id := r.raft.LeaderWithID()
		return &LeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return fmt.Errorf("cluster: raft: %w", err)
}

func (r *Raft) notLeader() error { return r.translate(raft.ErrNotLeader) }
