package cluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind. Two
// ignores, both hashicorp/raft's doing:
//   - NetworkTransport does not join its per-connection handlers on Close;
//     each ends only when the peer closes its pooled connection, which a
//     killed-and-restarted node may do after the test.
//   - A Raft shut down while committed entries still wait in its FSM queue
//     never answers their futures, so ApplyEntry's waiter for a write that
//     was in flight at the kill (its caller long gone with ErrTimeout)
//     stays blocked in future.Error (seen once in CI; the tests that
//     shut Raft down during writes are the leader-kill ones).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"),
		goleak.IgnoreAnyFunction("github.com/stokehq/stoke/cluster.(*Raft).ApplyEntry.func1"))
}
