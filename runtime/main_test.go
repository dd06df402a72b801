package runtime

import (
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
	goleak.VerifyTestMain(m)
}
