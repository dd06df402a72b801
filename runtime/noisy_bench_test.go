package runtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkNoisyNeighbour: the warm latency of a small (128 MB) function
// while four large (3008 MB) sandboxes on the same node spin every CPU,
// against the same function's latency on the idle node measured in the
// same run (the baseline). Each CPU mode is a sub-benchmark; the ratio
// that matters is p99-ratio, the small function's tail under the attack.
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, floor := range []int{0, 512, 1769} {
		b.Run(fmt.Sprintf("weight-floor-%dMB", floor), func(b *testing.B) { benchNoisy(b, CPUWeight, floor) })
	}
	b.Run("quota", func(b *testing.B) { benchNoisy(b, CPUQuota, 0) })
}

func benchNoisy(b *testing.B, mode CPUMode, floorMB int) {
	p := benchPool(b, map[string]string{"go": goFunction(b)}, func(c *PoolConfig) { c.CPUMode = mode; c.CPUFloorMB = floorMB })
	canary := goSpec("canary")
	canary.MemoryMB = 128
	payload := []byte(`{"op":"echo"}`)
	ctx := context.Background()
	sample := func(n int) []time.Duration {
		out := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			res, err := p.Invoke(ctx, canary, Invocation{Payload: payload})
			out = append(out, time.Since(t0))
			if err != nil || res.FunctionError != "" {
				b.Fatalf("canary: %v %s", err, res.Payload)
			}
		}
		return out
	}
	sample(20) // cold start and warm-up outside the measurement
	base := sample(b.N)

	// The attack: four large functions, each spinning every CPU it sees in
	// 2 s invocations, until the canary's samples are taken (bounded: the
	// sampling is b.N invocations, and each burner stops after its next
	// invocation once told to).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	burning := make(chan struct{}, 4)
	for i := range 4 {
		fn := goSpec("burner")
		fn.Key = fn.Key + string(rune('a'+i))
		fn.MemoryMB = 3008
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; ; first = false {
				if !first {
					select {
					case <-stop:
						return
					default:
					}
				}
				if first {
					burning <- struct{}{}
				}
				if _, err := p.Invoke(ctx, fn, Invocation{Payload: []byte(`{"op":"burn","n":2000}`)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-burning
	}
	b.ResetTimer()
	got := sample(b.N)
	b.StopTimer()
	close(stop)
	wg.Wait()
	reportVs(b, got, base)
}
