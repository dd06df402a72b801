package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
)

// TestStoppingLeaderHandsOffLeadership: a leader stopped gracefully (the
// agent's Close, what SIGTERM runs) hands leadership to another server
// before it stops answering. Found by the chaos suite's rolling restart:
// the stopping leader closed its gRPC server at once but let go of Raft
// seconds later, and for all that time no node could renew its
// concurrency lease or forward a write, so every invocation in the
// cluster was throttled. Here the other servers would wait a minute
// before standing for election on their own, so only a hand-off gives
// them a leader within the test's wait.
func TestStoppingLeaderHandsOffLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster test; skipped with -short")
	}
	c := newTestCluster(t)
	var seed []string
	for _, id := range []string{"s1", "s2", "s3"} {
		cfg := c.clusterConfig(id, true, seed...)
		cfg.Cluster.BootstrapExpect = 3
		if id != "s1" {
			cfg.RaftHeartbeatTimeout, cfg.RaftElectionTimeout = time.Minute, time.Minute
		}
		a := c.start(cfg)
		seed = []string{a.GossipAddr()}
	}
	clustertest.WaitFor(t, 30*time.Second, func() error {
		for _, a := range c.live() {
			if id, _ := a.raft.Leader(); id != "s1" {
				return fmt.Errorf("%s follows %q, want s1", a.NodeID(), id)
			}
		}
		return nil
	})
	c.stop("s1")
	clustertest.WaitFor(t, 15*time.Second, func() error {
		if l := c.leader(); l == nil {
			return fmt.Errorf("no leader among the remaining servers")
		}
		return nil
	})
}
