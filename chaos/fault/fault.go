// Package fault holds the named failures chaos scenarios inject into a
// running cluster: crash (SIGKILL, healed by a restart from the data
// dir), pause (SIGSTOP/SIGCONT), network partition (both ways or one),
// packet loss, latency (tc netem, where the kernel has it) and a full data
// disk. Each is a small value: Name says what it does to whom, Inject picks
// its victims at that moment (the leader now, not at construction) and
// breaks them, Heal undoes exactly that.
//
// There is no clock-offset fault: the agent's only clock seam is
// cluster.RaftConfig.Now, which no flag exposes, and the leader stamps
// every command's time itself, so an offset on a follower changes nothing
// a client can observe; on the leader it would only shift timestamps.
// It is worth adding with lease-based features that compare clocks.
package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/stokehq/stoke/chaos/harness"
)

// Fault is one failure injected into a running cluster.
type Fault interface {
	// Name says what the fault does and to whom, e.g. "kill(leader)".
	Name() string
	// Inject picks the victims and breaks them. It may be called again
	// only after Heal.
	Inject(ctx context.Context, c *harness.Cluster) error
	// Heal undoes what Inject did. Healing a fault never injected, or
	// twice, is a no-op.
	Heal(ctx context.Context) error
}

// Target picks the nodes a fault acts on when it is injected.
type Target struct {
	// Name describes the choice ("leader", "n2", "random").
	Name string
	Pick func(ctx context.Context, c *harness.Cluster) ([]*harness.Node, error)
}

// Leader targets the node that leads when the fault is injected.
func Leader() Target {
	return Target{Name: "leader", Pick: func(ctx context.Context, c *harness.Cluster) ([]*harness.Node, error) {
		l, err := c.WaitLeader(ctx)
		if err != nil {
			return nil, err
		}
		return []*harness.Node{l}, nil
	}}
}

// Nodes targets fixed nodes.
func Nodes(nodes ...*harness.Node) Target {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.ID
	}
	return Target{Name: strings.Join(names, ","), Pick: func(context.Context, *harness.Cluster) ([]*harness.Node, error) {
		return nodes, nil
	}}
}

// Random targets one node chosen with rng among those keep accepts (all
// when keep is nil) that are running.
func Random(rng *rand.Rand, keep func(*harness.Node) bool) Target {
	return Target{Name: "random", Pick: func(_ context.Context, c *harness.Cluster) ([]*harness.Node, error) {
		var pool []*harness.Node
		for _, n := range c.Nodes() {
			if n.Running() && (keep == nil || keep(n)) {
				pool = append(pool, n)
			}
		}
		if len(pool) == 0 {
			return nil, errors.New("fault: no running node to pick")
		}
		return []*harness.Node{pool[rng.IntN(len(pool))]}, nil
	}}
}

// victims remembers what a fault hit, for Heal and for the scenario.
type victims struct {
	mu      sync.Mutex
	nodes   []*harness.Node
	c       *harness.Cluster
	pending bool // injected and not healed yet
}

func (v *victims) pick(ctx context.Context, c *harness.Cluster, t Target) ([]*harness.Node, error) {
	nodes, err := t.Pick(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("fault: pick %s: %w", t.Name, err)
	}
	v.mu.Lock()
	v.nodes, v.c, v.pending = nodes, c, true
	v.mu.Unlock()
	return nodes, nil
}

// take returns the victims still to heal, once: a second Heal is a no-op.
func (v *victims) take() ([]*harness.Node, *harness.Cluster) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.pending {
		return nil, nil
	}
	v.pending = false
	return v.nodes, v.c
}

// Victims returns the nodes the last Inject hit (also after Heal).
func (v *victims) Victims() []*harness.Node {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]*harness.Node(nil), v.nodes...)
}
