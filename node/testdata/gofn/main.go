// Command gofn is the provided.al2023 function the node's end-to-end tests
// deploy: a real aws-lambda-go handler that reports what it saw.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

var calls int

func handle(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	calls++
	var ev map[string]any
	_ = json.Unmarshal(raw, &ev)
	if ev["op"] == "error" {
		return nil, errors.New("boom")
	}
	lc, _ := lambdacontext.FromContext(ctx)
	out := map[string]any{
		"runtime":          "go",
		"event":            ev,
		"calls":            calls,
		"function_name":    lambdacontext.FunctionName,
		"function_version": lambdacontext.FunctionVersion,
		"greeting":         os.Getenv("GREETING"),
	}
	if lc != nil {
		out["request_id"] = lc.AwsRequestID
		out["client_custom"] = lc.ClientContext.Custom
	}
	return out, nil
}

func main() { lambda.Start(handle) }
