package sim

import (
	"fmt"
	"math"
)

// Scenario is a workload that grows with the cluster it is replayed on,
// so that every cluster size carries the same load per node: a 100-node
// cluster serves twenty times the functions of a 5-node one, as it would
// in production. Comparing sizes under one fixed workload would instead
// leave the large clusters nearly idle, where bounded loads (relative to
// the average load) and random placement behave unlike they do in
// service.
type Scenario struct {
	// Source is the trace the workload is drawn from (see Trace.Resize).
	Source *Trace
	// FunctionsPerNode sets the workload of an n-node cluster:
	// n × FunctionsPerNode functions of Source.
	FunctionsPerNode int
	// StartMinute and Minutes select the replayed window of Source,
	// warm-up included.
	StartMinute, Minutes int
	// Headroom sizes the nodes: the cluster's memory is Headroom times
	// the workload's peak demand (PeakDemandMB), split evenly, and each
	// node holds at least four of the largest sandboxes. Above 1, so that
	// every invocation can run; the rest is what keeps sandboxes warm.
	Headroom float64
}

// Build returns the workload for an n-node cluster and the replay
// configuration: base with Nodes and NodeMemoryMB set.
func (s Scenario) Build(n int, base Config) (*Trace, Config, error) {
	if s.Source == nil || s.FunctionsPerNode < 1 || !(s.Headroom > 1) || math.IsInf(s.Headroom, 1) {
		return nil, Config{}, fmt.Errorf("sim: scenario needs a source trace, FunctionsPerNode >= 1 and a finite Headroom > 1")
	}
	tr, err := s.Source.Resize(n*s.FunctionsPerNode).Window(s.StartMinute, s.Minutes)
	if err != nil {
		return nil, Config{}, err
	}
	cfg := base
	cfg.Nodes = n
	largest := 0
	for _, f := range tr.Functions {
		largest = max(largest, f.MemoryMB)
	}
	perNode := int(s.Headroom * float64(PeakDemandMB(tr, cfg)) / float64(n))
	cfg.NodeMemoryMB = max(perNode, 4*largest, 1)
	return tr, cfg, cfg.Validate()
}
