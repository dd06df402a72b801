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

// Partition the worker that is a function's home (reserved concurrency R)
// from every other node for 60 s under sync load through the servers,
// upload new code meanwhile, then heal. Pass (issue 9): no wrong result;
// from detection + 2 s until the heal the function is served elsewhere
// (acknowledged calls in every 5 s of it, every call succeeds or is
// throttled, none runs on the cut-off worker); the executions the
// function itself logged, on every node and the cut-off one included,
// never overlap more than R, at any time; the worker rejoins; after the
// heal no call runs the old code. The load asks for more than R at once,
// so throttles are expected throughout.
func init() {
	register(Scenario{Name: "worker-partition", Run: workerPartition})
}

const (
	partitionFor     = 60 * time.Second
	partitionReserve = 4
	// servedEvery is the granularity of "served elsewhere meanwhile".
	servedEvery = 5 * time.Second
)

func workerPartition(t *testing.T, env *Env) check.Summary {
	s := check.Summary{Scenario: "worker-partition", Seed: env.Seed}
	harness.RequireNamespaces(env)
	cfg := harness.DefaultConfig()
	cfg.Workers = 2
	c := env.Start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	front := c.Servers()
	fn, victim := env.deployOnWorker(ctx, front[0], "chaos-partition", partitionReserve)

	load := &invokeLoad{Clients: env.invokersOver(front, 2*len(front)), Function: fn, SleepMS: 100, MaxOps: 3000, Pace: 50 * time.Millisecond, Seed: env.Seed}
	from, stopLoad := env.startLoad(ctx, load)
	env.Hold(ctx, 5*time.Second)

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
	rejoinedAt, err := env.waitDeclared(ctx, front[0], victim, "alive")
	if err != nil {
		s.Failf("%s did not rejoin after the heal: %v", victim, err)
	}
	t.Logf("cut %s (home of %s) off at %.1fs, declared dead after %.1fs, new code at %.1fs, healed at %.1fs, rejoined after %.1fs",
		victim, fn, cutAt.Seconds(), (detectedAt - cutAt).Seconds(), updatedAt.Seconds(), healAt.Seconds(), (rejoinedAt - healAt).Seconds())
	env.Hold(ctx, 10*time.Second)
	until := stopLoad()

	ops := env.Rec.Ops()
	syncSummary(&s, ops, from, until)
	servedFrom := detectedAt + 2*time.Second
	served := map[int]int{} // 5 s window since servedFrom -> acknowledged calls
	afterHeal, onVictimBefore := 0, 0
	for _, op := range ops {
		if op.Kind != history.Invoke {
			continue
		}
		out, _ := op.Output.(history.InvokeOutput)
		during := op.Call > servedFrom && op.Return < healAt
		switch {
		case op.Return < cutAt && op.Outcome == history.OK && out.Node == victim.ID:
			onVictimBefore++
		case during && op.Outcome != history.OK && op.Error != check.ErrThrottled:
			s.Failf("call %d failed during the partition: %s %s", op.ID, op.Outcome, op.Error)
		case during && op.Outcome == history.OK && out.Node == victim.ID:
			s.Failf("call %d ran on the cut-off %s", op.ID, victim)
		case during && op.Outcome == history.OK:
			served[int((op.Return-servedFrom)/servedEvery)]++
		case op.Call > healAt && op.Outcome == history.OK:
			afterHeal++
			if out.Marker != "v2" {
				s.Failf("call %d after the heal ran code %q on %s, replaced at %.1fs", op.ID, out.Marker, out.Node, updatedAt.Seconds())
			}
		}
	}
	if onVictimBefore == 0 {
		s.Failf("no call ran on %s, the function's home, before the partition", victim)
	}
	for w := 0; servedFrom+time.Duration(w+1)*servedEvery <= healAt; w++ {
		if served[w] == 0 {
			s.Failf("no call was served between %.1fs and %.1fs of the partition", (servedFrom + time.Duration(w)*servedEvery).Seconds(),
				(servedFrom + time.Duration(w+1)*servedEvery).Seconds())
		}
	}
	if afterHeal == 0 {
		s.Failf("no call succeeded after the heal")
	}
	runs, err := env.executions(fn)
	if err != nil {
		s.Failf("reading the function's executions: %v", err)
	}
	peak, at := check.MaxOverlap(intervals(runs))
	if peak > partitionReserve {
		s.Failf("%d executions overlapped at %d (unix ns); reserved concurrency is %d", peak, at, partitionReserve)
	}
	env.checkRanOnce(&s, fn)
	t.Logf("%d executions logged by the function, peak overlap %d of %d reserved; %d calls succeeded after the heal",
		len(runs), peak, partitionReserve, afterHeal)
	if len(s.Failures) > 10 {
		s.Failures = append(s.Failures[:10], "...")
	}
	return s
}
