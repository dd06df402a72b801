package scenario

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/harness"
)

// Environment of a run:
//
//	STOKE_CHAOS=full          every scenario, not just the smoke subset
//	STOKE_CHAOS_SEEDS="1 2 3" the seeds each scenario runs with (default 1)
//	STOKE_CHAOS_SCENARIO=name only this scenario
//	STOKE_CHAOS_REPORT=path   write the results table there (markdown)
func TestMain(m *testing.M) {
	code := harness.RunMain(m)
	if path := os.Getenv("STOKE_CHAOS_REPORT"); path != "" && len(results) > 0 {
		if err := writeReport(path, results); err != nil {
			fmt.Fprintln(os.Stderr, "chaos report:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	resultsMu sync.Mutex
	results   []check.Summary
)

func seeds(t *testing.T) []int64 {
	raw := os.Getenv("STOKE_CHAOS_SEEDS")
	if raw == "" {
		return []int64{1}
	}
	var out []int64
	for _, f := range strings.Fields(strings.ReplaceAll(raw, ",", " ")) {
		s, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("STOKE_CHAOS_SEEDS: %q is not a number", f)
		}
		out = append(out, s)
	}
	return out
}

// TestScenarios runs the scenarios: the smoke subset by default, all of
// them with STOKE_CHAOS=full. Each run prints its results row; a failing
// one prints how to repeat exactly that run.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos scenarios start real clusters; skipped with -short")
	}
	full := os.Getenv("STOKE_CHAOS") == "full"
	only := os.Getenv("STOKE_CHAOS_SCENARIO")
	for _, sc := range All {
		if (only != "" && sc.Name != only) || (only == "" && !full && !sc.Smoke) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			for _, seed := range seeds(t) {
				var env *Env
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					start := time.Now()
					env = newEnv(t, seed)
					t.Cleanup(func() {
						if env.skipped != "" {
							resultsMu.Lock()
							results = append(results, check.Summary{Scenario: sc.Name, Seed: seed, Skipped: env.skipped})
							resultsMu.Unlock()
						}
					})
					s := sc.Run(t, env)
					s.Duration = time.Since(start)
					resultsMu.Lock()
					results = append(results, s)
					resultsMu.Unlock()
					t.Logf("\n%s%s", check.TableHeader, s.Row())
					for _, f := range s.Failures {
						t.Error(f)
					}
					if t.Failed() {
						t.Logf("rerun this run: make chaos SCENARIO=%s SEED=%d\n  or: STOKE_CHAOS_SCENARIO=%s STOKE_CHAOS_SEEDS=%d go test -count=1 -v -run 'TestScenarios/^%s$/^seed=%d$' ./chaos/scenario",
							sc.Name, seed, sc.Name, seed, sc.Name, seed)
					}
				})
				if env != nil && env.skipped != "" {
					break // other seeds would skip for the same reason
				}
			}
		})
	}
}

// writeReport writes the results table to path, with how it was made.
func writeReport(path string, rows []check.Summary) error {
	var b strings.Builder
	b.WriteString("# Reliability: chaos results\n\n")
	b.WriteString("Written by `make chaos` (chaos/scenario with STOKE_CHAOS=full); do not edit by hand.\n")
	fmt.Fprintf(&b, "Last run: %s on %s, %d run(s). See chaos/scenario for what each scenario does and asserts.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), hostDescription(), len(rows))
	b.WriteString(check.Table(rows))
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func hostDescription() string {
	network := "per-node network namespaces"
	if ok, why := harness.CanNamespace(); !ok {
		network = "loopback addresses (" + why + ")"
	}
	return fmt.Sprintf("%d CPUs, %s", runtime.NumCPU(), network)
}
