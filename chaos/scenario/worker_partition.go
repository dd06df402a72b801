package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/fault"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Partition the worker running a function (reserved concurrency R) from
// every other node for 60 s under sync load through the servers, upload
// new code meanwhile, then heal. Pass: no wrong result; from detection +
// 2 s until the heal every call succeeds or is throttled, and none runs
// on the cut-off worker; the executions the function saw never overlap
// more than R, cluster-wide, at any time; the worker rejoins; after the
// heal no call runs the old code. Needs code replication and placement.
func init() {
	register(Scenario{Name: "worker-partition", Run: workerPartition})
}

const (
	partitionFor     = 60 * time.Second
	partitionReserve = 4
)

func workerPartition(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "worker-partition", Seed: env.Seed}
	harness.RequireNamespaces(env)
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const fn = "chaos-partition"
	front := c.Servers()
	if err := env.deployChaosFunction(ctx, front[0], fn, partitionReserve); err != nil {
		t.Fatal(err)
	}
	env.requireCodeReplication(ctx, fn, front[0])
	env.requirePlacement(ctx, fn)

	load := &invokeLoad{Function: fn, SleepMS: 100, MaxOps: 3000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	for i := range 2 * len(front) {
		load.Clients = append(load.Clients, env.Invoker(i, front[i%len(front)]))
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	from := env.Rec.Now()
	load.Start(loadCtx)
	env.Hold(ctx, 5*time.Second)

	victim := busiest(c, env.Rec.Ops(), func(n *harness.Node) bool { return !n.Server })
	if victim == nil || victim.Server {
		t.Fatalf("no worker ran the function before the partition (busiest: %v)", victim)
	}
	part := &fault.Partition{Target: fault.Nodes(victim), Dir: fault.Both}
	if err := part.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	cutAt := env.Rec.Now()
	detectedAt, err := env.waitDeclared(ctx, front[0], victim, "dead")
	if err != nil {
		s.Failf("gossip never declared %s dead: %v", victim, err)
	}
	env.Hold(ctx, 10*time.Second)
	api, closeIdle := client.NewLambda(front[0].Endpoint(), c.Credentials())
	defer closeIdle()
	if _, err := api.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(fn),
		ZipFile: client.ChaosFunctionZip("v2")}); err != nil {
		t.Fatalf("update code during the partition: %v", err)
	}
	updatedAt := env.Rec.Now()
	env.Hold(ctx, cutAt+partitionFor-env.Rec.Now())
	healAt := env.Rec.Now()
	if err := part.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.waitDeclared(ctx, front[0], victim, "alive"); err != nil {
		s.Failf("%s did not rejoin after the heal: %v", victim, err)
	}
	env.Hold(ctx, 10*time.Second)
	stopLoad()
	load.Wait()
	until := env.Rec.Now()

	ops := env.Rec.Ops()
	syncSummary(&s, ops, from, until)
	for _, op := range ops {
		if op.Kind != history.Invoke {
			continue
		}
		out, _ := op.Output.(history.InvokeOutput)
		during := op.Call > detectedAt+2*time.Second && op.Return < healAt
		switch {
		case during && op.Outcome != history.OK && op.Error != check.ErrThrottled:
			s.Failf("call %d failed during the partition: %s %s", op.ID, op.Outcome, op.Error)
		case during && op.Outcome == history.OK && out.Node == victim.ID:
			s.Failf("call %d ran on the cut-off %s", op.ID, victim)
		case op.Call > healAt && op.Outcome == history.OK && out.Marker != "v2":
			s.Failf("call %d after the heal ran code %q, uploaded before %.1fs", op.ID, out.Marker, updatedAt.Seconds())
		}
	}
	if peak, at := check.MaxOverlap(check.Executions(ops)); peak > partitionReserve {
		s.Failf("%d executions overlapped at %d (unix ns); reserved concurrency is %d", peak, at, partitionReserve)
	}
	if len(s.Failures) > 10 {
		s.Failures = append(s.Failures[:10], "...")
	}
	return s
}
