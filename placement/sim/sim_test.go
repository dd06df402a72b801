package sim

import (
	"testing"
	"time"
)

// everyMinute is a trace of one 128 MB function invoked once a minute
// for the given minutes, each run taking exactly one second.
func everyMinute(minutes int) *Trace {
	counts := make([]int32, minutes)
	for i := range counts {
		counts[i] = 1
	}
	return &Trace{
		Name:      "every-minute",
		Functions: []Function{{Key: "123456789012/tick/1", MemoryMB: 128, Duration: Quantiles{P: []float64{0, 1}, Millis: []float64{1000, 1000}}}},
		Counts:    [][]int32{counts},
	}
}

func TestRunSingleFunction(t *testing.T) {
	tests := []struct {
		name      string
		policy    Policy
		keepAlive time.Duration
		wantCold  int64
	}{
		{"bounded ring keeps it warm", BoundedRing, 10 * time.Minute, 0},
		{"plain ring keeps it warm", PlainRing, 10 * time.Minute, 0},
		{"no keep-alive", BoundedRing, 0, 55},
		{"random, no keep-alive", Random, 0, 55},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Nodes, cfg.NodeMemoryMB, cfg.WarmupMinutes, cfg.KeepAlive = 5, 1024, 5, tt.keepAlive
			r, err := Run(everyMinute(60), cfg, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if r.Invocations != 55 || r.ColdStarts != tt.wantCold || r.WarmHits != 55-tt.wantCold || r.Rejected != 0 {
				t.Fatalf("got %+v, want 55 invocations with %d cold starts", r, tt.wantCold)
			}
			if tt.policy != Random && (r.OffHome != 0 || r.Imbalance != 5) {
				t.Fatalf("got %+v, want every invocation at home (imbalance 5 over 5 nodes)", r)
			}
		})
	}
}

// TestRunRejectsWhenFull: a node that holds one sandbox, one candidate,
// and two overlapping invocations: the second is rejected.
func TestRunRejectsWhenFull(t *testing.T) {
	tr := everyMinute(3)
	tr.Counts[0] = []int32{0, 2, 0}
	tr.Functions[0].Duration = Quantiles{P: []float64{0, 1}, Millis: []float64{120_000, 120_000}}
	cfg := DefaultConfig()
	cfg.Nodes, cfg.NodeMemoryMB, cfg.WarmupMinutes, cfg.Candidates = 1, 128, 0, 1
	r, err := Run(tr, cfg, PlainRing)
	if err != nil {
		t.Fatal(err)
	}
	if r.Invocations != 2 || r.ColdStarts != 1 || r.Rejected != 1 {
		t.Fatalf("got %+v, want one cold start and one rejection", r)
	}
}

func TestPeakDemandMB(t *testing.T) {
	tr := everyMinute(3)
	tr.Counts[0] = []int32{3, 0, 1}
	tr.Functions[0].Duration = Quantiles{P: []float64{0, 1}, Millis: []float64{70_000, 70_000}}
	cfg := DefaultConfig()
	if got := PeakDemandMB(tr, cfg); got != 3*128 {
		t.Errorf("PeakDemandMB = %d, want 384 (three overlapping runs)", got)
	}
	cfg.MaxDuration = time.Millisecond
	if got := PeakDemandMB(tr, cfg); got != 128 {
		t.Errorf("PeakDemandMB with 1 ms runs = %d, want 128", got)
	}
}

// TestRunOnAzureSample replays an hour of the Azure sample at 5 and 20
// nodes under every policy and checks the accounting, determinism, and
// the comparisons the simulation exists to show. The last are outcomes of
// this fixed, seeded input, not laws: if a change to the simulator flips
// one, find out why before changing the test.
func TestRunOnAzureSample(t *testing.T) {
	src, err := LoadAzure(azureTestdata, 100)
	if err != nil {
		t.Fatal(err)
	}
	sc := Scenario{Source: src, FunctionsPerNode: 20, StartMinute: 600, Minutes: 60, Headroom: 1.5}
	for _, n := range []int{5, 20} {
		tr, cfg, err := sc.Build(n, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Functions) != 20*n || cfg.Nodes != n || int64(cfg.NodeMemoryMB)*int64(n) < PeakDemandMB(tr, cfg) {
			t.Fatalf("N=%d: %d functions, %d nodes of %d MB", n, len(tr.Functions), cfg.Nodes, cfg.NodeMemoryMB)
		}
		res := map[Policy]Result{}
		for _, p := range Policies {
			r, err := Run(tr, cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("N=%d %-12s warm %.3f cold %d rejected %d off-home %d imbalance %.2f idle %.0f/%.0f GB",
				n, p, r.WarmRatio(), r.ColdStarts, r.Rejected, r.OffHome, r.Imbalance, r.PeakIdleMB/1024, r.MeanIdleMB/1024)
			if again, _ := Run(tr, cfg, p); again != r {
				t.Fatalf("N=%d %s: replay not deterministic:\n%+v\n%+v", n, p, r, again)
			}
			if r.WarmHits+r.ColdStarts+r.Rejected != r.Invocations || r.Invocations == 0 {
				t.Fatalf("N=%d %s: %+v does not add up", n, p, r)
			}
			if r.PeakIdleMB < r.MeanIdleMB || r.Imbalance < 1 {
				t.Fatalf("N=%d %s: %+v: peak idle below mean, or imbalance below 1", n, p, r)
			}
			if p == PlainRing && r.OffHome != r.Spilled {
				t.Fatalf("N=%d: plain ring ran %d off home but spilled %d", n, r.OffHome, r.Spilled)
			}
			res[p] = r
		}
		if n == 20 && res[BoundedRing].WarmRatio() <= res[Random].WarmRatio() {
			t.Errorf("N=%d: bounded ring warm %.3f, random %.3f: want the ring ahead", n, res[BoundedRing].WarmRatio(), res[Random].WarmRatio())
		}
		if res[BoundedRing].Imbalance >= res[PlainRing].Imbalance {
			t.Errorf("N=%d: bounded ring imbalance %.2f, plain %.2f: want bounds to balance", n, res[BoundedRing].Imbalance, res[PlainRing].Imbalance)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Nodes = 3
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for name, modify := range map[string]func(*Config){
		"no nodes":        func(c *Config) { c.Nodes = 0 },
		"no memory":       func(c *Config) { c.NodeMemoryMB = 0 },
		"no candidates":   func(c *Config) { c.Candidates = 0 },
		"negative warmup": func(c *Config) { c.WarmupMinutes = -1 },
		"zero sampling":   func(c *Config) { c.SampleEvery = 0 },
		"bad ring":        func(c *Config) { c.Ring.LoadFactor = 1 },
	} {
		c := ok
		modify(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
	if _, err := Run(everyMinute(5), ok, BoundedRing); err == nil {
		t.Error("Run with more warm-up than trace succeeded")
	}
}
