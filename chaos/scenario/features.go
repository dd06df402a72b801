package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
)

// Probes for the features scenarios depend on. A scenario whose feature
// the agent lacks skips, naming the issue that brings it, and runs as soon
// as a merge of main brings the feature: the probes look at behaviour,
// not at versions.

// requireLambdaAPI skips unless the agent serves the Lambda REST API
// (issue 4).
func (e *Env) requireLambdaAPI() {
	e.t.Helper()
	c, t := e.c, e.t
	n := c.Nodes()[0]
	api, closeIdle := client.NewLambda(n.Endpoint(), c.Credentials())
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := api.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		e.Skipf("the agent does not serve the Lambda API on %s yet (issue 4): %v", n.Endpoint(), err)
	}
	if err != nil {
		t.Fatalf("ListFunctions on %s: %v", n, err)
	}
}

// probeInvoke invokes fn through n once and returns the node that ran it.
func (e *Env) probeInvoke(ctx context.Context, n *harness.Node, fn string) (ranOn string, err error) {
	api, closeIdle := client.NewLambda(n.Endpoint(), e.c.Credentials())
	defer closeIdle()
	var hdr string
	out, err := api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`{"nonce":"probe"}`)},
		func(o *lambda.Options) { o.APIOptions = append(o.APIOptions, client.CaptureNode(&hdr)) })
	if err != nil {
		return "", err
	}
	if out.FunctionError != nil {
		return "", fmt.Errorf("function error: %s", out.Payload)
	}
	return hdr, nil
}

// requireCodeReplication skips unless fn, created through created, can be
// invoked through every other node (issue 7: code packages replicated
// before the commit that makes them visible, fetched from peers on a miss).
func (e *Env) requireCodeReplication(ctx context.Context, fn string, created *harness.Node) {
	e.t.Helper()
	for _, n := range e.c.Others(created) {
		if _, err := e.probeInvoke(ctx, n, fn); err != nil {
			if strings.Contains(err.Error(), "code unavailable") || strings.Contains(err.Error(), "blob: not found") {
				e.Skipf("needs code replication (issue 7): %s was created through %s, invoking it through %s: %v", fn, created, n, err)
			}
			e.t.Fatalf("invoking %s through %s: %v", fn, n, err)
		}
	}
}

// requirePlacement skips unless invocations are routed by placement
// (issue 6): when every node runs what it receives itself, there is no
// routing to test.
func (e *Env) requirePlacement(ctx context.Context, fn string) {
	e.t.Helper()
	local := 0
	for _, n := range e.c.Nodes() {
		ranOn, err := e.probeInvoke(ctx, n, fn)
		if err != nil {
			e.t.Fatalf("invoking %s through %s: %v", fn, n, err)
		}
		if ranOn == n.ID {
			local++
		}
	}
	if local == len(e.c.Nodes()) {
		e.Skipf("needs placement-based invoke routing (issue 6): every node ran %s itself", fn)
	}
}

// requireAsync skips unless Event invocations are accepted (issue 8).
func (e *Env) requireAsync(ctx context.Context, fn string, n *harness.Node) {
	e.t.Helper()
	api, closeIdle := client.NewLambda(n.Endpoint(), e.c.Credentials())
	defer closeIdle()
	_, err := api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`{"nonce":"probe-async"}`),
		InvocationType: types.InvocationTypeEvent})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusBadRequest && strings.Contains(err.Error(), "not available") {
		e.Skipf("needs asynchronous invocation (issue 8): %v", err)
	}
	if err != nil {
		e.t.Fatalf("Event invocation of %s through %s: %v", fn, n, err)
	}
}
