package scenario

import (
	"context"
	"errors"
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

// Kill the node that accepted a function's upload the moment it answers
// 201. Pass: the function is invocable through every surviving node within
// 10 s: the 201 promised the code was already replicated. Needs code
// replication.
func init() {
	register(Scenario{Name: "upload-node-kill", Run: uploadNodeKill})
}

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

	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	upload := without(c.Nodes(), leader)[env.Rand.IntN(len(c.Nodes())-1)]
	api, closeIdle := client.NewLambda(upload.Endpoint(), c.Credentials())
	defer closeIdle()
	const fn = "chaos-upload"
	if _, err := api.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(fn), Runtime: types.RuntimePython311,
		Handler: aws.String("chaosfn.handler"), Role: aws.String(client.Role),
		Code: &types.FunctionCode{ZipFile: client.ChaosFunctionZip("upload")}}); err != nil {
		t.Fatalf("create through %s: %v", upload, err)
	}
	if err := upload.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := env.Rec.Now()
	t.Logf("killed %s right after its 201", upload)

	survivors := without(c.Nodes(), upload)
	for i, n := range survivors {
		inv := env.Invoker(i, n)
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		err := harness.Poll(wctx, 200*time.Millisecond, func() error {
			op := inv.Invoke(wctx, fn, "", "upload-"+n.ID, 0)
			if op.Outcome != history.OK {
				return errors.New(op.Error)
			}
			if out := op.Output.(history.InvokeOutput); out.Nonce != "upload-"+n.ID || out.Marker != "upload" {
				s.Failf("wrong result through %s: %+v", n, out)
			}
			return nil
		})
		wcancel()
		if err != nil {
			s.Lost = 1
			s.Failf("code not invocable through %s within 10 s of the upload node's death: %v", n, err)
		}
	}
	ops := env.Rec.Ops()
	r := check.SyncInvocations(ops, time.Second)
	s.Ops, s.Acked = r.Calls, r.OKs
	s.MaxUnavailable = check.MaxGap(ops, killedAt, env.Rec.Now(), func(op history.Op) bool { return op.Kind == history.Invoke })
	return s
}
