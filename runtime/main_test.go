package runtime

import (
	"fmt"
	"os"
	"testing"

	// The test functions under testdata import these; naming them here
	// keeps them in go.mod.
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/aws/aws-lambda-go/lambdacontext"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The pool re-executes this test binary as the sandbox init.
	MaybeRunSandboxInit()
	code := m.Run()
	if goFnDir != "" {
		os.RemoveAll(goFnDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
