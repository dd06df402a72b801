package cluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// test shuts down the Raft nodes and memberlists it starts, and both join
// their goroutines on shutdown, so no ignore list is needed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
