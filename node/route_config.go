package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/placement"
)

// RoutingConfig configures how invocations reach sandboxes across the
// cluster: the placement ring, forwarding, cluster-wide admission and
// provisioned concurrency.
type RoutingConfig struct {
	// Placement shapes the ring. Every node of a cluster must use the same
	// Placement, or nodes disagree on where a function version lives.
	Placement placement.Config
	// Candidates is how many nodes along the ring an invocation may be
	// tried on: the home shard and the next ones (spill-over).
	Candidates int
	// ChunkBytes is the size of the payload and response chunks a
	// forwarded invocation is streamed in.
	ChunkBytes int
	// SuspectFor is how long a node whose gRPC port refused a connection
	// is left out of placement on this node, before gossip decides.
	SuspectFor time.Duration
	// LoadInterval is how often this node refreshes the load summary it
	// gossips (gossip itself bounds how often a change is sent).
	LoadInterval time.Duration
	// Leases is this node's side of cluster-wide admission. NodeID, Now
	// and Logger are filled in by the agent.
	Leases admission.LeaseConfig
	// Coordinator configures the lease coordinator the Raft leader runs.
	Coordinator admission.CoordinatorConfig
	// ProvisionedInterval is how often provisioned concurrency is
	// reconciled (besides the passes metadata changes trigger).
	ProvisionedInterval time.Duration
}

// DefaultRoutingConfig returns production settings.
func DefaultRoutingConfig() RoutingConfig {
	return RoutingConfig{
		Placement:           placement.DefaultConfig(),
		Candidates:          3,
		ChunkBytes:          64 << 10,
		SuspectFor:          time.Second,
		LoadInterval:        250 * time.Millisecond,
		Leases:              admission.DefaultLeaseConfig(),
		Coordinator:         admission.DefaultCoordinatorConfig(),
		ProvisionedInterval: 5 * time.Second,
	}
}

func (c *RoutingConfig) validate() error {
	if err := c.Placement.Validate(); err != nil {
		return fmt.Errorf("node: routing: %w", err)
	}
	switch {
	case c.Candidates < 1:
		return errors.New("node: routing: Candidates must be at least 1")
	case c.ChunkBytes < 1024 || c.ChunkBytes > 1<<20:
		return errors.New("node: routing: ChunkBytes must be in [1 KiB, 1 MiB]")
	case c.SuspectFor <= 0 || c.LoadInterval <= 0 || c.ProvisionedInterval <= 0:
		return errors.New("node: routing: SuspectFor, LoadInterval and ProvisionedInterval must be positive")
	}
	leases := c.Leases
	leases.NodeID, leases.Logger = "check", slog.Default()
	if err := leases.Validate(); err != nil {
		return fmt.Errorf("node: routing: %w", err)
	}
	if err := c.Coordinator.Validate(); err != nil {
		return fmt.Errorf("node: routing: %w", err)
	}
	if c.Leases.RenewInterval*2 >= c.Coordinator.LeaseTTL {
		return fmt.Errorf("node: routing: lease RenewInterval %v must be under half the LeaseTTL %v", c.Leases.RenewInterval, c.Coordinator.LeaseTTL)
	}
	if c.Leases.RPCTimeout >= c.Coordinator.LeaseTTL {
		return fmt.Errorf("node: routing: lease RPCTimeout %v must be under the LeaseTTL %v (a later answer carries an expired grant)", c.Leases.RPCTimeout, c.Coordinator.LeaseTTL)
	}
	return nil
}
