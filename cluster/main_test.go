package cluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind. One
// ignore: raft's NetworkTransport does not join its per-connection
// handlers on Close; each ends only when the peer closes its pooled
// connection, which a killed-and-restarted node may do after the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).handleConn"))
}
