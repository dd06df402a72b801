package placement

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("placement: invalid config")

// Limits on Config fields. They keep a ring's size bounded whatever weights
// the cluster reports: a member owns at most MaxVirtualNodes ×
// maxWeightMultiple points.
const (
	// MaxVirtualNodes is the largest accepted Config.VirtualNodes.
	MaxVirtualNodes = 4096
	// MaxLoadFactor is the largest accepted Config.LoadFactor. Beyond a
	// few times the fair share a bound no longer bounds anything useful.
	MaxLoadFactor = 64
)

// Config shapes a Ring. Every node of a cluster must use the same Config,
// or they compute different rings; the node layer takes it from flags that
// default to DefaultConfig and compares Fingerprints across nodes.
type Config struct {
	// VirtualNodes is how many points on the ring a member of weight
	// ReferenceWeight owns. A member of weight w owns
	// round(VirtualNodes × w / ReferenceWeight) points, at least 1 and at
	// most 64 × VirtualNodes (heavier members are clamped there).
	//
	// More points spread a member's share of the key space over more,
	// smaller arcs, so shares deviate less from the weights (the relative
	// standard deviation of a share is about 1/sqrt(points)); fewer points
	// make the ring smaller and its lookups faster. Must be in
	// [1, MaxVirtualNodes].
	VirtualNodes int

	// ReferenceWeight is the weight that earns exactly VirtualNodes
	// points, in the unit Member.Weight uses. Stoke weighs nodes by their
	// sandbox memory budget in MiB, so the default 1024 gives a node
	// VirtualNodes points per GiB of budget. Must be at least 1.
	ReferenceWeight uint32

	// LoadFactor is the c of consistent hashing with bounded loads
	// (Mirrokni, Thorup, Zadimoghaddam): Place passes over a node whose
	// load would exceed c times its weighted share of the total load.
	// Smaller values balance tighter but spill keys away from their home
	// more often (the paper bounds the expected spill per key by
	// O(1/(c-1)^2)). Must be finite, greater than 1 and at most
	// MaxLoadFactor.
	LoadFactor float64
}

// DefaultConfig returns the configuration Stoke's nodes use.
//
// 40 points per GiB gives a 4 GiB node 160 points (share deviation about
// 8%) and a 16 GiB node 640 (about 4%), while a 100-node cluster of 16 GiB
// nodes still has a ring of 64,000 points (750 KB, a 16-step binary search).
// A load factor of 1.25 lets a node run a quarter above its fair share
// before its keys spill; docs/placement.md gives the simulation behind
// the choice (no rejections and the busiest node within 1.4x the mean at
// 20 and 100 nodes, where looser bounds trade one for the other).
func DefaultConfig() Config {
	return Config{
		VirtualNodes:    40,
		ReferenceWeight: 1024,
		LoadFactor:      1.25,
	}
}

// Validate reports the first field that is out of range, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.VirtualNodes < 1 || c.VirtualNodes > MaxVirtualNodes {
		return fmt.Errorf("%w: VirtualNodes must be in [1, %d], got %d", ErrInvalidConfig, MaxVirtualNodes, c.VirtualNodes)
	}
	if c.ReferenceWeight < 1 {
		return fmt.Errorf("%w: ReferenceWeight must be at least 1, got 0", ErrInvalidConfig)
	}
	if math.IsNaN(c.LoadFactor) || c.LoadFactor <= 1 || c.LoadFactor > MaxLoadFactor {
		return fmt.Errorf("%w: LoadFactor must be in (1, %d], got %v", ErrInvalidConfig, MaxLoadFactor, c.LoadFactor)
	}
	return nil
}
