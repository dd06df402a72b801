package placement

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageIsPure guards the package's contract that it computes over
// what it is given: it must not depend on the cluster, node, runtime or
// fsm packages, Raft, memberlist, gRPC or the network, must not read
// clocks, randomness or the environment itself, and must not start
// goroutines.
func TestPackageIsPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbiddenDeps := []string{
		"github.com/stokehq/stoke/cluster", "github.com/stokehq/stoke/node",
		"github.com/stokehq/stoke/runtime", "github.com/stokehq/stoke/fsm",
		"github.com/stokehq/stoke/proto", "github.com/stokehq/stoke/chaos",
		"github.com/hashicorp/", "google.golang.org/grpc", "github.com/grpc-ecosystem/",
		"net", "os/exec",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range forbiddenDeps {
			if dep == bad || strings.HasPrefix(dep, strings.TrimSuffix(bad, "/")+"/") {
				t.Errorf("placement depends on %s", dep)
			}
		}
	}

	// fmt pulls time, os and sync in transitively, so direct imports are
	// checked from the source, with goroutines.
	forbiddenImports := map[string]bool{
		"time": true, "os": true, "sync": true, "sync/atomic": true, "net": true,
		"math/rand": true, "math/rand/v2": true, "crypto/rand": true, "hash/maphash": true, "unsafe": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); forbiddenImports[path] {
				t.Errorf("%s imports %s", fset.Position(imp.Pos()), path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s starts a goroutine", fset.Position(g.Pos()))
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
