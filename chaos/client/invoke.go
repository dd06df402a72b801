package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stokehq/stoke/chaos/history"
	"github.com/stokehq/stoke/node"
)

// Invoker is a recording data-plane client: one sequential caller bound
// to one node, invoking the chaos function (ChaosFunctionZip).
type Invoker struct {
	rec     *history.Recorder
	id      int
	node    string
	api     *lambda.Client
	close   func()
	timeout time.Duration
}

// InvokerConfig configures an Invoker.
type InvokerConfig struct {
	// Client is the caller's id in the history (unique per caller).
	Client int
	// Node and Endpoint name the node requests go to.
	Node, Endpoint string
	Credentials    node.Credentials
	// Timeout bounds each invocation; past it the outcome is Unknown.
	Timeout time.Duration
}

// NewInvoker returns a data-plane client recording into rec.
func NewInvoker(rec *history.Recorder, cfg InvokerConfig) *Invoker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	api, closeFn := NewLambda(cfg.Endpoint, cfg.Credentials)
	return &Invoker{rec: rec, id: cfg.Client, node: cfg.Node, api: api, close: closeFn, timeout: cfg.Timeout}
}

// Close releases the client's idle connections.
func (c *Invoker) Close() { c.close() }

// Node is the node this client talks to.
func (c *Invoker) Node() string { return c.node }

// chaosEvent is the chaos function's event.
type chaosEvent struct {
	Nonce   string `json:"nonce"`
	SleepMS int    `json:"sleep_ms,omitempty"`
}

// Invoke calls fn (at qualifier, "" for $LATEST) synchronously with a
// nonce; the function sleeps sleepMS. The output is what the function
// reported: the nonce it saw, its execution interval, its sandbox, and
// the node that ran it (X-Stoke-Node).
func (c *Invoker) Invoke(ctx context.Context, fn, qualifier, nonce string, sleepMS int) history.Op {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := c.rec.Begin(c.id, c.node, history.Invoke, fn, history.InvokeInput{Nonce: nonce, Qualifier: qualifier})
	payload, _ := json.Marshal(chaosEvent{Nonce: nonce, SleepMS: sleepMS})
	in := &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: payload}
	if qualifier != "" {
		in.Qualifier = aws.String(qualifier)
	}
	var ranOn string
	out, err := c.api.Invoke(ctx, in, func(o *lambda.Options) {
		o.APIOptions = append(o.APIOptions, CaptureNode(&ranOn))
	})
	var res history.InvokeOutput
	if err == nil {
		var body struct {
			Nonce   string `json:"nonce"`
			Start   int64  `json:"start_unix_nano"`
			End     int64  `json:"end_unix_nano"`
			Sandbox string `json:"sandbox"`
			Marker  string `json:"marker"`
		}
		// A body that is not the chaos function's shape (an error
		// payload) leaves the nonce empty: a wrong result unless
		// FunctionError explains it.
		_ = json.Unmarshal(out.Payload, &body)
		res = history.InvokeOutput{Nonce: body.Nonce, FunctionError: aws.ToString(out.FunctionError),
			StartUnixNano: body.Start, EndUnixNano: body.End, Sandbox: body.Sandbox, Marker: body.Marker, Node: ranOn}
	}
	return end(p, err, res)
}

// InvokeAsync queues an Event invocation of fn with a nonce; OK means the
// cluster answered 202 and so promised to deliver it at least once.
func (c *Invoker) InvokeAsync(ctx context.Context, fn, nonce string) history.Op {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := c.rec.Begin(c.id, c.node, history.InvokeAsync, fn, history.InvokeInput{Nonce: nonce})
	payload, _ := json.Marshal(chaosEvent{Nonce: nonce})
	_, err := c.api.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: payload,
		InvocationType: types.InvocationTypeEvent})
	return end(p, err, nil)
}

// CaptureNode is an SDK option middleware that stores X-Stoke-Node, the
// node that ran an invocation, in *dst.
func CaptureNode(dst *string) func(*middleware.Stack) error {
	return captureHeader("X-Stoke-Node", dst)
}

// captureHeader is an SDK middleware that copies one response header.
func captureHeader(name string, dst *string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("chaosCaptureHeader",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok {
					*dst = resp.Header.Get(name)
				}
				return out, md, err
			}), middleware.After)
	}
}
