package sim

import (
	"errors"
	"fmt"
	"math"
)

// SyntheticConfig shapes a generated trace.
type SyntheticConfig struct {
	// Functions is how many functions the trace has. Function i is the
	// same in every trace with the same Seed, whatever Functions is.
	Functions int
	// Minutes is the trace's length.
	Minutes int
	// Seed makes the trace reproducible.
	Seed uint64
	// TimerFraction is the share of functions that run on a timer: once
	// every 1 to 60 minutes, like Azure's timer triggers. They make up
	// much of the long tail that keep-alive policies fight over. In [0, 1].
	TimerFraction float64
	// BurstsPerDay is how often, on average, each non-timer function
	// bursts: for 1 to 10 minutes its rate jumps to 5-50 times its usual
	// rate, and to at least 2-30 invocations a minute, so rarely used
	// functions burst too. At least 0.
	BurstsPerDay float64
}

// DefaultSyntheticConfig is a day of 1,000 functions with the skew the
// Azure 2019 trace reports: rates spread over six orders of magnitude, a
// third of the functions on timers, and a couple of bursts per function
// per day.
func DefaultSyntheticConfig() SyntheticConfig {
	return SyntheticConfig{
		Functions:     1000,
		Minutes:       1440,
		Seed:          1,
		TimerFraction: 0.35,
		BurstsPerDay:  2,
	}
}

// Validate reports the first field out of range.
func (c SyntheticConfig) Validate() error {
	switch {
	case c.Functions < 1:
		return fmt.Errorf("sim: SyntheticConfig.Functions must be at least 1, got %d", c.Functions)
	case c.Minutes < 1:
		return fmt.Errorf("sim: SyntheticConfig.Minutes must be at least 1, got %d", c.Minutes)
	case !(c.TimerFraction >= 0 && c.TimerFraction <= 1):
		return fmt.Errorf("sim: SyntheticConfig.TimerFraction must be in [0, 1], got %v", c.TimerFraction)
	case !(c.BurstsPerDay >= 0) || math.IsInf(c.BurstsPerDay, 1):
		return errors.New("sim: SyntheticConfig.BurstsPerDay must be finite and at least 0")
	}
	return nil
}

// Normal quantiles at the probabilities Quantiles uses for generated
// durations; 0 and 1 stand for 0.001 and 0.999.
var (
	synthProbs = []float64{0, 0.01, 0.25, 0.50, 0.75, 0.99, 1}
	synthZ     = []float64{-3.090, -2.326, -0.674, 0, 0.674, 2.326, 3.090}
)

// Synthetic generates a trace. Per function, drawn from a generator
// seeded by (Seed, function index):
//   - memory from Lambda's common sizes, 128 MB to 2 GB, smaller more likely;
//   - a log-normal duration distribution whose median is itself log-normal
//     around 500 ms (from a few ms to minutes), with a spread of e^0.6;
//   - either a timer period (1, 5, 10, 15, 30 or 60 minutes, random phase)
//     or a Poisson rate per minute, log-normal around 0.2 a minute with a
//     decade of standard deviation, so a few functions take most of the
//     invocations, modulated by a daily cycle (±50%) and bursts.
func Synthetic(cfg SyntheticConfig) (*Trace, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := &Trace{Name: fmt.Sprintf("synthetic-%d", cfg.Functions)}
	memories := []int{128, 256, 512, 1024, 1536, 2048}
	memWeights := []float64{0.30, 0.25, 0.20, 0.15, 0.05, 0.05}
	periods := []int{1, 5, 10, 15, 30, 60}
	burstP := cfg.BurstsPerDay / 1440

	for f := range cfg.Functions {
		rng := &splitmix{state: mix(cfg.Seed ^ mix(uint64(f)+1))}
		fn := Function{Key: fmt.Sprintf("synthetic/fn-%d/1", f)}
		u, acc := rng.float64(), 0.0
		for i, w := range memWeights {
			acc += w
			if u < acc || i == len(memWeights)-1 {
				fn.MemoryMB = memories[i]
				break
			}
		}
		median := math.Pow(10, math.Max(0, math.Min(5.5, 2.7+0.8*rng.normal())))
		fn.Duration = Quantiles{P: synthProbs, Millis: make([]float64, len(synthZ))}
		for i, z := range synthZ {
			fn.Duration.Millis[i] = median * math.Exp(0.6*z)
		}

		counts := make([]int32, cfg.Minutes)
		if rng.float64() < cfg.TimerFraction {
			period := periods[rng.intn(len(periods))]
			for m := rng.intn(period); m < cfg.Minutes; m += period {
				counts[m] = 1
			}
		} else {
			rate := math.Min(2000, math.Pow(10, -0.7+1.0*rng.normal()))
			phase := 2 * math.Pi * rng.float64()
			burstLeft, burstRate := 0, 0.0
			for m := range counts {
				lambda := rate * (1 + 0.5*math.Sin(2*math.Pi*float64(m)/1440+phase))
				if burstLeft == 0 && rng.float64() < burstP {
					burstLeft = 1 + rng.intn(10)
					burstRate = math.Max(lambda*float64(5+rng.intn(46)), float64(2+rng.intn(29)))
				}
				if burstLeft > 0 {
					lambda = burstRate
					burstLeft--
				}
				counts[m] = int32(rng.poisson(lambda))
			}
		}
		tr.Functions = append(tr.Functions, fn)
		tr.Counts = append(tr.Counts, counts)
	}
	return tr, nil
}
