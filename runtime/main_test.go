package runtime

import (
	"os"
	"testing"

	// The test functions under testdata import these; naming them here
	// keeps them in go.mod.
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/aws/aws-lambda-go/lambdacontext"
)

func TestMain(m *testing.M) {
	MaybeRunSandboxInit()
	os.Exit(m.Run())
}
