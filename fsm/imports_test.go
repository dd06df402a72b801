package fsm

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRule guards the package boundary: the state machine must not
// depend on the cluster, the node, gRPC, memberlist or Raft itself.
func TestImportRule(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH; cannot list dependencies")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/stokehq/stoke/fsm").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/stokehq/stoke/cluster", "github.com/stokehq/stoke/node",
		"github.com/stokehq/stoke/runtime", "google.golang.org/grpc",
		"github.com/hashicorp/memberlist", "github.com/hashicorp/raft",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range forbidden {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("fsm depends on %s", dep)
			}
		}
	}
}
