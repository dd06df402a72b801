package node

import (
	"errors"
	"fmt"
	"time"
)

// CodeConfig configures how code packages are replicated, fetched,
// repaired and collected (see docs/code-packages.md).
type CodeConfig struct {
	// Replicas is R: how many nodes hold a complete copy of every package.
	// An upload waits for R durable copies before the function command
	// commits, and repair restores R after a loss. The cluster uses
	// min(Replicas, committed nodes). Default 3.
	Replicas int
	// MinReplicas is the fewest copies an upload may succeed with while
	// fewer than R nodes are alive (repair adds the rest when nodes come
	// back); capped by R. Default 2, so a cluster of two or more nodes
	// never acknowledges code held by a single disk.
	MinReplicas int
	// ChunkBytes is the size of the data messages of blob streams.
	// Default 1 MiB.
	ChunkBytes int
	// TransferTimeout bounds one push or fetch of a blob between nodes.
	// Default 2 minutes.
	TransferTimeout time.Duration
	// RepairInterval is how often the leader checks replica counts and
	// collects unreferenced blobs, and how often every node audits its own
	// copies, deletes collected blobs and evicts unpacked trees. Default 30 s.
	RepairInterval time.Duration
	// ScrubInterval is how often a node re-reads every local blob against
	// its checksums. Reads for sandboxes and peers are verified anyway;
	// the scrub finds corruption in copies nobody reads. Default 24 h.
	ScrubInterval time.Duration
	// GCGrace is how long a blob that no function or version references
	// is kept (its record, then every node's copy) before deletion. It
	// also protects copies that arrive before their upload commits.
	// Default 1 h.
	GCGrace time.Duration
	// UnpackedBudgetBytes bounds the disk used by unpacked trees; the
	// least recently used tree no sandbox holds goes first. Default 20 GiB.
	UnpackedBudgetBytes int64
	// UnpackedDir is where unpacked trees live; empty means
	// DataDir/code/unpacked. Pointing it at a tmpfs makes the first cold
	// start of a large package on a node much faster (docs/performance.md),
	// using memory within UnpackedBudgetBytes.
	UnpackedDir string
}

// DefaultCodeConfig returns the production settings.
func DefaultCodeConfig() CodeConfig {
	return CodeConfig{
		Replicas:            3,
		MinReplicas:         2,
		ChunkBytes:          1 << 20,
		TransferTimeout:     2 * time.Minute,
		RepairInterval:      30 * time.Second,
		ScrubInterval:       24 * time.Hour,
		GCGrace:             time.Hour,
		UnpackedBudgetBytes: 20 << 30,
	}
}

// Validate reports every setting that cannot work.
func (c *CodeConfig) Validate() error {
	var errs []error
	if c.Replicas < 1 {
		errs = append(errs, fmt.Errorf("node: code Replicas is %d; it must be at least 1", c.Replicas))
	}
	if c.MinReplicas < 1 {
		errs = append(errs, fmt.Errorf("node: code MinReplicas is %d; it must be at least 1", c.MinReplicas))
	}
	if c.ChunkBytes < 4<<10 || c.ChunkBytes > 3<<20 {
		errs = append(errs, fmt.Errorf("node: code ChunkBytes is %d; it must be between 4 KiB and 3 MiB (gRPC's message limit is 4 MiB)", c.ChunkBytes))
	}
	for name, d := range map[string]time.Duration{"TransferTimeout": c.TransferTimeout, "RepairInterval": c.RepairInterval,
		"ScrubInterval": c.ScrubInterval, "GCGrace": c.GCGrace} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("node: code %s is %v; it must be positive", name, d))
		}
	}
	if c.UnpackedBudgetBytes < 0 {
		errs = append(errs, fmt.Errorf("node: code UnpackedBudgetBytes is %d; it must not be negative (0: no bound)", c.UnpackedBudgetBytes))
	}
	return errors.Join(errs...)
}
