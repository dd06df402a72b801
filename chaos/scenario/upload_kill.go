package scenario

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Kill the node that accepted a function's upload the moment it answers:
// first a CreateFunction (201), then, with that node back, an
// UpdateFunctionCode (200) through another one. Pass (issue 9): each time
// the code is invocable, and the new code is what runs, through every
// surviving node within 10 s: the answer promised that the code was
// already replicated.
func init() {
	register(Scenario{Name: "upload-node-kill", Smoke: true, Run: uploadNodeKill})
}

// invocableWithin bounds how long after the upload node's death the code
// must be invocable through every survivor.
const invocableWithin = 10 * time.Second

func uploadNodeKill(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "upload-node-kill", Seed: env.Seed, Duplicates: -1}
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Probe with another function first, so a cluster without replication
	// skips instead of failing.
	if err := env.deployChaosFunction(ctx, c.Servers()[0], "chaos-probe", 0); err != nil {
		t.Fatal(err)
	}
	env.requireCodeReplication(ctx, "chaos-probe", c.Servers()[0])

	const fn = "chaos-upload"
	var from time.Duration
	upload := func(clients int, marker string, send func(api *lambda.Client) error) {
		leader, err := c.WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		others := c.Others(leader)
		n := others[env.Rand.IntN(len(others))]
		api, closeIdle := client.NewLambda(n.Endpoint(), c.Credentials())
		defer closeIdle()
		if err := send(api); err != nil {
			t.Fatalf("upload %q through %s: %v", marker, n, err)
		}
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
		killedAt := env.Rec.Now()
		if from == 0 {
			from = killedAt
		}
		t.Logf("killed %s right after it accepted upload %q", n, marker)
		for i, sv := range c.Others(n) {
			if err := env.invocableThrough(ctx, clients+i, sv, fn, marker); err != nil {
				s.Lost++
				s.Failf("upload %q not invocable through %s within %v of the upload node's death: %v", marker, sv, invocableWithin, err)
			}
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("cluster not ready after restarting %s: %v", n, err)
		}
	}
	upload(100, "create", func(api *lambda.Client) error {
		_, err := api.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(fn), Runtime: types.RuntimePython311,
			Handler: aws.String("chaosfn.handler"), Role: aws.String(client.Role),
			Code: &types.FunctionCode{ZipFile: client.ChaosFunctionZip("create")}})
		return err
	})
	upload(200, "update", func(api *lambda.Client) error {
		_, err := api.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(fn),
			ZipFile: client.ChaosFunctionZip("update")})
		return err
	})
	ops := env.Rec.Ops()
	r := check.SyncInvocations(ops, time.Second)
	s.Ops, s.Acked = r.Calls, r.OKs
	s.MaxUnavailable = check.MaxGap(ops, from, env.Rec.Now(), func(op history.Op) bool { return op.Kind == history.Invoke })
	for _, w := range r.Wrong {
		s.Failf("wrong result: call %d sent %+v, got %+v", w.ID, w.Input, w.Output)
	}
	return s
}

// invocableThrough invokes fn through n until a call succeeds running the
// code marked marker, for at most invocableWithin, recording every call
// as client id. A call that runs other code is retried (the node's
// replica may not have applied the update yet); one echoing another
// call's nonce is a wrong result the history check reports.
func (e *Env) invocableThrough(ctx context.Context, id int, n *harness.Node, fn, marker string) error {
	inv := e.Invoker(id, n)
	wctx, cancel := context.WithTimeout(ctx, invocableWithin)
	defer cancel()
	k := 0
	return harness.Poll(wctx, 200*time.Millisecond, func() error {
		k++
		nonce := fmt.Sprintf("s%d-%s-%s-%d", e.Seed, marker, n.ID, k)
		op := inv.Invoke(wctx, fn, "", nonce, 0)
		if op.Outcome != history.OK {
			return errors.New(op.Outcome.String() + " " + op.Error)
		}
		if out := op.Output.(history.InvokeOutput); out.Marker != marker {
			return fmt.Errorf("ran code %q", out.Marker)
		}
		return nil
	})
}
