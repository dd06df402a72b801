package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// Scenario is one chaos experiment.
type Scenario struct {
	// Name is the scenario's id in test names, SCENARIO= and the table.
	Name string
	// Smoke scenarios also run in the short default subset (make test).
	Smoke bool
	// Run executes the scenario on a fresh env and returns its summary
	// with every broken criterion recorded in Failures. It may skip.
	Run func(t *testing.T, env *Env) check.Summary
}

// All lists the scenarios in the order they run.
var All []Scenario

func register(s Scenario) { All = append(All, s) }

// Env is what a scenario run gets: its seed and random source, and helpers
// that start a cluster and record into one history.
type Env struct {
	Seed int64
	Rand *rand.Rand
	Rec  *history.Recorder
	t    *testing.T
	c    *harness.Cluster
	// skipped is why the run skipped, for the results table.
	skipped string
}

// Skipf skips the run and remembers why for the results table.
func (e *Env) Skipf(format string, args ...any) {
	e.skipped = fmt.Sprintf(format, args...)
	e.t.Skip(e.skipped)
}

func newEnv(t *testing.T, seed int64) *Env {
	return &Env{Seed: seed, Rand: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), Rec: history.NewRecorder(), t: t}
}

// Start starts the scenario's cluster and skips the run when the agent
// does not serve the Lambda API yet.
func (e *Env) Start(cfg harness.Config) *harness.Cluster {
	e.t.Helper()
	e.c = harness.Start(e.t, cfg)
	e.t.Cleanup(e.saveHistory)
	e.requireLambdaAPI()
	return e.c
}

// Control returns a recording control-plane client bound to n, closed
// when the test ends.
func (e *Env) Control(id int, n *harness.Node) *client.Control {
	c := client.NewControl(e.Rec, client.ControlConfig{Client: id, Node: n.ID, Endpoint: n.Endpoint(),
		Credentials: e.c.Credentials()})
	e.t.Cleanup(c.Close)
	return c
}

// Admin returns an admin client for the cluster, closed when the test ends.
func (e *Env) Admin() *client.Admin {
	a := client.NewAdmin(e.c.Credentials())
	e.t.Cleanup(a.Close)
	return a
}

// Hold lets the load run for d: a phase of the scenario's schedule, not a
// wait for a condition. It returns early when ctx ends.
func (e *Env) Hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// holdBeforeFault lets the load run for 3 to 5 s, drawn from the seed,
// so that the fault lands at a random point of a steady load.
func (e *Env) holdBeforeFault(ctx context.Context) {
	e.Hold(ctx, time.Duration(3000+e.Rand.IntN(2000))*time.Millisecond)
}

// load is a client load a scenario runs while it injects faults.
type load interface {
	// Start starts the clients; they stop when ctx ends.
	Start(ctx context.Context)
	// Wait returns once every client has returned.
	Wait()
}

// startLoad starts l and returns when it started on the recorder's clock,
// and stop, which ends the load, waits for its clients and returns when
// they had all returned. The load also ends with ctx, which every
// scenario cancels when it returns, so a run that fails before calling
// stop leaves no client running on.
func (e *Env) startLoad(ctx context.Context, l load) (from time.Duration, stop func() (until time.Duration)) {
	ctx, cancel := context.WithCancel(ctx)
	from = e.Rec.Now()
	l.Start(ctx)
	return from, func() time.Duration {
		cancel()
		l.Wait()
		return e.Rec.Now()
	}
}

// saveHistory writes the recorded history next to the logs when the run
// failed, for porcupine's visualization and for reading by hand.
func (e *Env) saveHistory() {
	if !e.t.Failed() || e.c == nil {
		return
	}
	dir := e.c.ArtifactDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return
	}
	defer f.Close()
	_ = history.WriteJSON(f, e.Rec.Ops())
	e.t.Logf("history: %s", f.Name())
}
