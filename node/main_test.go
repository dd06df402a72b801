package node

import (
	"os"
	"testing"

	"github.com/stokehq/stoke/runtime"
)

func TestMain(m *testing.M) {
	// Agents in these tests run sandbox pools, which re-execute this test
	// binary as each sandbox's init.
	runtime.MaybeRunSandboxInit()
	os.Exit(m.Run())
}
