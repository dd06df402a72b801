package sim

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// BenchmarkPlacementSim replays each scenario at 5, 20 and 100 nodes
// under every policy in the same run, reports the figures as metrics and
// prints them as a table (docs/performance.md, "Placement"):
//
//	go test -run '^$' -bench PlacementSim -benchtime 1x ./placement/sim
//
// The figures are deterministic; ns/op is the cost of one replay. Set
// STOKE_AZURE_TRACE_DIR to a directory holding the 1,000-function Azure
// sample to add it; without it the benchmark runs the synthetic trace and
// the 100-function sample only.
func BenchmarkPlacementSim(b *testing.B) {
	scenarios := benchScenarios(b)
	type row struct {
		scenario string
		fns      int
		nodeGB   float64
		r        Result
	}
	results := map[string]row{}
	var order []string
	for _, sc := range scenarios {
		for _, n := range []int{5, 20, 100} {
			tr, cfg, err := sc.Build(n, DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range Policies {
				name := fmt.Sprintf("%s/N=%d/%s", sc.name, n, p)
				b.Run(name, func(b *testing.B) {
					var r Result
					for b.Loop() {
						var err error
						if r, err = Run(tr, cfg, p); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(100*r.WarmRatio(), "warm-%")
					b.ReportMetric(float64(r.ColdStarts), "cold-starts")
					b.ReportMetric(float64(r.Rejected), "rejected")
					b.ReportMetric(100*float64(r.OffHome)/float64(r.Invocations), "off-home-%")
					b.ReportMetric(r.PeakIdleMB/1024, "idle-peak-GB")
					b.ReportMetric(r.MeanIdleMB/1024, "idle-mean-GB")
					b.ReportMetric(r.Imbalance, "imbalance")
					b.ReportMetric(r.MinuteImbalance, "minute-imbalance")
					if _, seen := results[name]; !seen {
						order = append(order, name)
					}
					results[name] = row{sc.name, len(tr.Functions), float64(cfg.NodeMemoryMB) / 1024, r}
				})
			}
		}
	}
	if len(order) == 0 {
		return
	}
	var t strings.Builder
	t.WriteString("\n| trace | N | functions | node GB | policy | invocations | warm hits | cold starts | rejected | off home | idle GB peak / mean | imbalance (run / minute) |\n")
	t.WriteString("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range order {
		x := results[name]
		r := x.r
		fmt.Fprintf(&t, "| %s | %d | %d | %.0f | %s | %d | %.1f%% | %d | %d | %.1f%% | %.0f / %.0f | %.2f / %.2f |\n",
			x.scenario, r.Nodes, x.fns, x.nodeGB, r.Policy, r.Invocations, 100*r.WarmRatio(), r.ColdStarts, r.Rejected,
			100*float64(r.OffHome)/float64(r.Invocations), r.PeakIdleMB/1024, r.MeanIdleMB/1024, r.Imbalance, r.MinuteImbalance)
	}
	fmt.Print(t.String())
}

// BenchmarkLoadFactorSweep replays the bounded ring with load factors
// from 1.25 to 3 at 20 and 100 nodes, the figures behind the default
// c = 1.25 (docs/placement.md):
//
//	go test -run '^$' -bench LoadFactorSweep -benchtime 1x ./placement/sim
func BenchmarkLoadFactorSweep(b *testing.B) {
	var t strings.Builder
	t.WriteString("\n| trace | N | load factor | warm hits | cold starts | rejected | off home | idle GB mean | imbalance (run / minute) |\n")
	t.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range benchScenarios(b)[:2] {
		for _, n := range []int{20, 100} {
			tr, cfg, err := sc.Build(n, DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range []float64{1.25, 1.5, 2, 3} {
				cfg.Ring.LoadFactor = c
				b.Run(fmt.Sprintf("%s/N=%d/c=%v", sc.name, n, c), func(b *testing.B) {
					var r Result
					for b.Loop() {
						var err error
						if r, err = Run(tr, cfg, BoundedRing); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(100*r.WarmRatio(), "warm-%")
					b.ReportMetric(r.Imbalance, "imbalance")
					fmt.Fprintf(&t, "| %s | %d | %v | %.1f%% | %d | %d | %.1f%% | %.0f | %.2f / %.2f |\n",
						sc.name, n, c, 100*r.WarmRatio(), r.ColdStarts, r.Rejected,
						100*float64(r.OffHome)/float64(r.Invocations), r.MeanIdleMB/1024, r.Imbalance, r.MinuteImbalance)
				})
			}
		}
	}
	fmt.Print(t.String())
}

type benchScenario struct {
	name string
	Scenario
}

// benchScenarios are the workloads of BenchmarkPlacementSim: two hours
// of each trace (10:00 to 12:00, the first 20 minutes warm-up) on a
// cluster with 1.5 times the memory the workload's peak needs.
func benchScenarios(b *testing.B) []benchScenario {
	window := func(src *Trace, perNode int) Scenario {
		return Scenario{Source: src, FunctionsPerNode: perNode, StartMinute: 600, Minutes: 120, Headroom: 1.5}
	}
	synth := DefaultSyntheticConfig()
	synth.Functions, synth.Minutes = 40*100, 720
	syn, err := Synthetic(synth)
	if err != nil {
		b.Fatal(err)
	}
	a100, err := LoadAzure(azureTestdata, 100)
	if err != nil {
		b.Fatal(err)
	}
	out := []benchScenario{
		{"synthetic", window(syn, 40)},
		{"azure-100", window(a100, 20)},
	}
	if dir := os.Getenv(AzureTraceDirEnv); dir != "" {
		a1000, err := LoadAzure(dir, 1000)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, benchScenario{"azure-1000", window(a1000, 10)})
	} else {
		b.Logf("%s is not set: skipping the 1,000-function Azure sample", AzureTraceDirEnv)
	}
	return out
}
