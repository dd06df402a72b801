package client

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/chaos/history"
	"github.com/stokehq/stoke/node"
)

// Role is the execution role every chaos function names (Stoke checks its
// shape only).
const Role = "arn:aws:iam::123456789012:role/chaos"

// Control is a recording control-plane client: one sequential caller
// bound to one node. Every method records one operation and returns it.
type Control struct {
	rec     *history.Recorder
	id      int
	node    string
	api     *lambda.Client
	close   func()
	timeout time.Duration
	code    []byte
}

// ControlConfig configures a Control client.
type ControlConfig struct {
	// Client is the caller's id in the history (unique per caller).
	Client int
	// Node and Endpoint name the node requests go to.
	Node, Endpoint string
	Credentials    node.Credentials
	// Timeout bounds each operation; past it the outcome is Unknown.
	Timeout time.Duration
	// Code is the zip CreateFunction uploads (default: BootstrapZip()).
	Code []byte
}

// NewControl returns a control-plane client recording into rec.
func NewControl(rec *history.Recorder, cfg ControlConfig) *Control {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Code == nil {
		cfg.Code = BootstrapZip()
	}
	api, closeFn := NewLambda(cfg.Endpoint, cfg.Credentials)
	return &Control{rec: rec, id: cfg.Client, node: cfg.Node, api: api, close: closeFn, timeout: cfg.Timeout, code: cfg.Code}
}

// Close releases the client's idle connections.
func (c *Control) Close() { c.close() }

// ID is the client's id in the history.
func (c *Control) ID() int { return c.id }

// Node is the node this client talks to.
func (c *Control) Node() string { return c.node }

func (c *Control) begin(ctx context.Context, kind, fn string, in history.ControlInput) (context.Context, context.CancelFunc, *history.Pending) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return ctx, cancel, c.rec.Begin(c.id, c.node, kind, fn, in)
}

// CreateFunction creates fn ($LATEST) with the given description.
func (c *Control) CreateFunction(ctx context.Context, fn, description string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.CreateFunction, fn, history.ControlInput{Description: description})
	defer cancel()
	_, err := c.api.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(fn), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("chaos.handler"),
		Role: aws.String(Role), Code: &types.FunctionCode{ZipFile: c.code}, Description: aws.String(description),
	})
	return end(p, err, history.ControlOutput{})
}

// UpdateDescription sets fn's $LATEST description.
func (c *Control) UpdateDescription(ctx context.Context, fn, description string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.UpdateConfig, fn, history.ControlInput{Description: description})
	defer cancel()
	_, err := c.api.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(fn), Description: aws.String(description),
	})
	return end(p, err, history.ControlOutput{})
}

// Publish publishes fn's $LATEST; the output is the version returned and
// its description.
func (c *Control) Publish(ctx context.Context, fn string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.PublishVersion, fn, history.ControlInput{})
	defer cancel()
	out, err := c.api.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn)})
	var res history.ControlOutput
	if err == nil {
		res.Version, res.Description = aws.ToString(out.Version), aws.ToString(out.Description)
	}
	return end(p, err, res)
}

// CreateAlias points a new alias of fn at version.
func (c *Control) CreateAlias(ctx context.Context, fn, alias, version string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.CreateAlias, fn, history.ControlInput{Alias: alias, Version: version})
	defer cancel()
	_, err := c.api.CreateAlias(ctx, &lambda.CreateAliasInput{
		FunctionName: aws.String(fn), Name: aws.String(alias), FunctionVersion: aws.String(version),
	})
	return end(p, err, history.ControlOutput{})
}

// Delete deletes fn with its versions and aliases.
func (c *Control) Delete(ctx context.Context, fn string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.DeleteFunction, fn, history.ControlInput{})
	defer cancel()
	_, err := c.api.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(fn)})
	return end(p, err, history.ControlOutput{})
}

// Get reads fn's configuration ($LATEST when qualifier is empty, else a
// version); the output is its description.
func (c *Control) Get(ctx context.Context, fn, qualifier string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.GetFunction, fn, history.ControlInput{Qualifier: qualifier})
	defer cancel()
	in := &lambda.GetFunctionInput{FunctionName: aws.String(fn)}
	if qualifier != "" {
		in.Qualifier = aws.String(qualifier)
	}
	out, err := c.api.GetFunction(ctx, in)
	var res history.ControlOutput
	if err == nil && out.Configuration != nil {
		res.Description = aws.ToString(out.Configuration.Description)
	}
	return end(p, err, res)
}

// GetAlias reads an alias of fn; the output is the version it points to.
func (c *Control) GetAlias(ctx context.Context, fn, alias string) history.Op {
	ctx, cancel, p := c.begin(ctx, history.GetAlias, fn, history.ControlInput{Alias: alias})
	defer cancel()
	out, err := c.api.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String(fn), Name: aws.String(alias)})
	var res history.ControlOutput
	if err == nil {
		res.Version = aws.ToString(out.FunctionVersion)
	}
	return end(p, err, res)
}
