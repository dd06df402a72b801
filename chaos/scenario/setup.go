package scenario

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
)

// deployChaosFunction creates the chaos function (client.ChaosFunctionZip,
// python3.11) as name through node n, with reserved concurrency when
// reserved > 0, and invokes it once there so a sandbox is warm. Setup is
// not part of the checked history.
func (e *Env) deployChaosFunction(ctx context.Context, n *harness.Node, name string, reserved int32) error {
	api, closeIdle := client.NewLambda(n.Endpoint(), e.c.Credentials())
	defer closeIdle()
	if _, err := api.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), Runtime: types.RuntimePython311, Handler: aws.String("chaosfn.handler"),
		Role: aws.String(client.Role), Code: &types.FunctionCode{ZipFile: client.ChaosFunctionZip("v1")}, Timeout: aws.Int32(30),
	}); err != nil {
		return fmt.Errorf("create %s through %s: %w", name, n, err)
	}
	// Like an SDK waiter, read the function back before using it: the
	// invoke path reads the node's own replica, which may not have applied
	// the create yet when a follower answers 201 (a consistent read waits
	// until it has).
	if _, err := api.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)}); err != nil {
		return fmt.Errorf("read back %s through %s: %w", name, n, err)
	}
	if reserved > 0 {
		if _, err := api.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String(name), ReservedConcurrentExecutions: aws.Int32(reserved),
		}); err != nil {
			return fmt.Errorf("reserve concurrency of %s: %w", name, err)
		}
	}
	out, err := api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{"nonce":"warm-up"}`)})
	if err != nil {
		return fmt.Errorf("warm-up invoke of %s through %s: %w", name, n, err)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("warm-up invoke of %s failed in the function: %s", name, out.Payload)
	}
	return nil
}

// deployOnWorker deploys chaos functions named prefix-1, prefix-2, ...
// (with reserved concurrency when reserved > 0) through front until one's
// home (the node its first invocation, a cold start, ran on, which keeps
// its warm sandbox) is a worker, and returns its name and home. Placement
// hashes the name, so each try is a fresh draw; the functions that missed
// stay deployed, idle. It skips the run unless the cluster replicates
// code and routes invocations by placement, which the worker scenarios
// test, and fails it when no function can be deployed.
func (e *Env) deployOnWorker(ctx context.Context, front *harness.Node, prefix string, reserved int32) (string, *harness.Node) {
	e.t.Helper()
	const tries = 16
	for i := 1; i <= tries; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if err := e.deployChaosFunction(ctx, front, name, reserved); err != nil {
			e.t.Fatal(err)
		}
		ranOn, err := e.probeInvoke(ctx, front, name)
		if err != nil {
			e.t.Fatalf("probe invoke of %s through %s: %v", name, front, err)
		}
		if home := e.c.Node(ranOn); home != nil && !home.Server {
			e.requireCodeReplication(ctx, name, front)
			e.requirePlacement(ctx, name)
			return name, home
		}
	}
	e.t.Fatalf("none of %d functions %s-N is homed on a worker", tries, prefix)
	return "", nil
}
