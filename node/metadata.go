package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Forwarder carries writes and read-index requests to the leader when this
// node is not it. The cluster wiring provides one; a lone node has none.
type Forwarder interface {
	ForwardApply(ctx context.Context, leaderID, leaderAddr string, entry []byte) (*fsmpb.ApplyResult, error)
	ForwardReadIndex(ctx context.Context, leaderID, leaderAddr string) (uint64, error)
}

// Metadata is how the rest of the node reads and writes replicated state.
// Writes go to the leader (locally or forwarded) and are retried across
// leader changes with the same request id, which the FSM answers
// idempotently; reads come from the local replica, or after a read-index
// round trip when they must observe every acknowledged write.
type Metadata struct {
	raft    *cluster.Raft
	forward Forwarder
}

// NewMetadata returns the facade over r; fwd may be nil on a lone node.
func NewMetadata(r *cluster.Raft, fwd Forwarder) *Metadata {
	return &Metadata{raft: r, forward: fwd}
}

// SetForwarder installs the forwarder once the cluster wiring exists.
func (m *Metadata) SetForwarder(f Forwarder) { m.forward = f }

// Raft exposes the local Raft node (for status and the cluster wiring).
func (m *Metadata) Raft() *cluster.Raft { return m.raft }

// NewRequestID returns a random idempotency key for a command.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Apply commits cmd and returns its result. It stamps a request id when the
// command has none, then retries transient failures (no leader yet, leader
// changed, outcome unknown) until ctx ends. FSM refusals (*fsm.Error) return
// at once.
func (m *Metadata) Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	if h := cmd.GetHeader(); h != nil && h.RequestId == "" {
		h.RequestId = NewRequestID()
	}
	entry, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		res, err := m.applyOnce(ctx, entry)
		if err == nil {
			// Read your writes: once Apply returns, this node's own
			// replica shows the command, even when the leader applied it.
			if werr := m.raft.Store().WaitForIndex(ctx, res.GetIndex()); werr != nil {
				return nil, unavailable(werr)
			}
			return res, nil
		}
		if !retryable(err) {
			return nil, err
		}
		lastErr = err
		if !backoff(ctx, attempt) {
			return nil, unavailable(lastErr)
		}
	}
}

// attemptTimeout bounds one attempt to commit or confirm through the
// leader. A leader cut off by a partition never answers; past this the
// caller re-resolves the leader and tries again (with the same request id),
// so a write waits about one election, not the caller's whole deadline.
const attemptTimeout = 2 * time.Second

func (m *Metadata) applyOnce(ctx context.Context, entry []byte) (*fsmpb.ApplyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	res, err := m.raft.ApplyEntry(ctx, entry)
	var le *cluster.LeaderError
	if errors.As(err, &le) && le.LeaderAddr != "" && m.forward != nil {
		return m.forward.ForwardApply(ctx, le.LeaderID, le.LeaderAddr, entry)
	}
	return res, err
}

// View reads the local replica: possibly stale, never blocking. The invoke
// path uses it.
func (m *Metadata) View() *fsm.View { return m.raft.Store().View() }

// ConsistentView returns a view that reflects every write acknowledged
// before the call, on any node (read index from the leader, then wait for
// the local replica to reach it). Control-plane reads use it.
func (m *Metadata) ConsistentView(ctx context.Context) (*fsm.View, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		idx, err := m.readIndexOnce(ctx)
		if err == nil {
			if err := m.raft.Store().WaitForIndex(ctx, idx); err != nil {
				return nil, unavailable(err)
			}
			return m.View(), nil
		}
		if !retryable(err) {
			return nil, err
		}
		lastErr = err
		if !backoff(ctx, attempt) {
			return nil, unavailable(lastErr)
		}
	}
}

func (m *Metadata) readIndexOnce(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	idx, err := m.raft.ReadIndex(ctx)
	var le *cluster.LeaderError
	if errors.As(err, &le) && le.LeaderAddr != "" && m.forward != nil {
		return m.forward.ForwardReadIndex(ctx, le.LeaderID, le.LeaderAddr)
	}
	return idx, err
}

// ErrUnavailable wraps the last transient error once retrying gave up:
// the cluster could not commit or confirm within the caller's deadline.
var ErrUnavailable = errors.New("metadata unavailable")

type unavailableError struct{ cause error }

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{ErrUnavailable, e.cause}
}

func unavailable(err error) error { return &unavailableError{cause: err} }

func retryable(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrLeadershipLost) || errors.Is(err, cluster.ErrTimeout)
}

// backoff waits before retry attempt+1 and reports whether ctx still allows it.
func backoff(ctx context.Context, attempt int) bool {
	d := min(time.Duration(10<<min(attempt, 5))*time.Millisecond, 250*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
