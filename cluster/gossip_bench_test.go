package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
)

// BenchmarkMembershipConvergence measures, for in-process clusters of 3, 5
// and 9 nodes with clustertest's fast gossip settings, the time from one
// node stopping abruptly to every survivor seeing it dead. The same output
// reports memberlist's configured bounds as the reference: the fastest
// declaration (minimal suspicion timeout) and the detection bound.
func BenchmarkMembershipConvergence(b *testing.B) {
	for _, n := range []int{3, 5, 9} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var total time.Duration
			var cfg cluster.GossipConfig
			for i := range b.N {
				gs := clustertest.StartGossips(b, fmt.Sprintf("b%d-", i), n, func(c *cluster.GossipConfig) { cfg = *c })
				victim := gs[n-1]
				start := time.Now()
				if err := victim.Shutdown(); err != nil {
					b.Fatal(err)
				}
				clustertest.WaitFor(b, time.Minute, func() error {
					for _, g := range gs[:n-1] {
						if m, _ := g.Member(victim.LocalID()); m.Status != cluster.StatusDead {
							return fmt.Errorf("%s sees %s %v", g.LocalID(), victim.LocalID(), m.Status)
						}
					}
					return nil
				})
				total += time.Since(start)
				for _, g := range gs {
					_ = g.Shutdown()
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-dead")
			b.ReportMetric(float64(cfg.SuspicionMinTimeout(n).Milliseconds()), "ms-min-suspicion")
			b.ReportMetric(float64(cfg.DetectionBound(n).Milliseconds()), "ms-detection-bound")
			b.ReportMetric(0, "ns/op") // wall time per op is the setup, not the figure
		})
	}
}
