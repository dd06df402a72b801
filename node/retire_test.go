package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/cluster/clustertest"
)

// TestReplacedSandboxesRetireWithoutAnotherInvocation: once the replica
// applies an UpdateFunctionConfiguration or a DeleteFunction, the idle
// sandboxes of what it replaced are torn down at once, with no further
// invocation needed, while an unchanged function's sandbox stays warm.
func TestReplacedSandboxesRetireWithoutAnotherInvocation(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	for _, name := range []string{"updated", "deleted", "kept"} {
		if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String(name), Runtime: types.RuntimePython311,
			Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, name)}}); err != nil {
			t.Fatal(err)
		}
		invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String(name)})
	}
	idle := func(name string) int {
		n := 0
		for key, ks := range a.pool.Stats().ByKey {
			if strings.Contains(key, "/"+name+"/") {
				n += ks.Idle + ks.Busy + ks.Initializing
			}
		}
		return n
	}
	for _, name := range []string{"updated", "deleted", "kept"} {
		if n := idle(name); n != 1 {
			t.Fatalf("%s has %d sandboxes after one invocation, want 1", name, n)
		}
	}

	if _, err := c.UpdateFunctionConfiguration(bg, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("updated"),
		Environment: &types.Environment{Variables: map[string]string{"STAGE": "two"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(bg, &lambda.DeleteFunctionInput{FunctionName: aws.String("deleted")}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 30*time.Second, func() error {
		if u, d := idle("updated"), idle("deleted"); u != 0 || d != 0 {
			return fmt.Errorf("sandboxes left: %d of the updated function's old configuration, %d of the deleted function", u, d)
		}
		return nil
	})
	if n := idle("kept"); n != 1 {
		t.Errorf("the unchanged function has %d sandboxes, want its 1 still warm", n)
	}
}
