package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
)

// FastRaftConfig returns a Raft configuration with timeouts short enough
// for tests yet long enough not to flap on a loaded 2-core machine under
// the race detector.
func FastRaftConfig(t testing.TB, id, dir, bind string) cluster.RaftConfig {
	cfg := cluster.DefaultRaftConfig()
	cfg.NodeID = id
	cfg.DataDir = dir
	cfg.BindAddr = bind
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = Logger(t, slog.LevelWarn)
	return cfg
}

// RaftNode is one in-process node of a RaftCluster.
type RaftNode struct {
	ID   string
	Dir  string
	Addr string

	mu   sync.Mutex
	raft *cluster.Raft // nil while the node is killed
}

// Raft returns the running node's Raft, or nil while it is killed.
func (n *RaftNode) Raft() *cluster.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.raft
}

func (n *RaftNode) set(r *cluster.Raft) *cluster.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.raft
	n.raft = r
	return old
}

// RaftCluster is N in-process Raft nodes, all voters.
type RaftCluster struct {
	t     testing.TB
	Nodes []*RaftNode
	// Configure, if set, adjusts each node's configuration before it starts.
	Configure func(*cluster.RaftConfig)
}

// NewRaftCluster starts n voters on 127.0.0.1 with free ports and waits
// for a leader. Every node is shut down when the test ends.
func NewRaftCluster(t testing.TB, n int, configure func(*cluster.RaftConfig)) *RaftCluster {
	t.Helper()
	c := &RaftCluster{t: t, Configure: configure}
	var servers []raft.Server
	for i := range n {
		addr := freeAddr(t)
		node := &RaftNode{ID: fmt.Sprintf("node%d", i), Dir: t.TempDir(), Addr: addr}
		c.Nodes = append(c.Nodes, node)
		servers = append(servers, raft.Server{ID: raft.ServerID(node.ID), Address: raft.ServerAddress(addr)})
	}
	for _, node := range c.Nodes {
		c.start(node, servers)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
		}
	})
	c.WaitForLeader(10 * time.Second)
	return c
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *RaftCluster) start(node *RaftNode, bootstrap []raft.Server) {
	c.t.Helper()
	cfg := FastRaftConfig(c.t, node.ID, node.Dir, node.Addr)
	cfg.Bootstrap = bootstrap != nil
	cfg.BootstrapServers = bootstrap
	if c.Configure != nil {
		c.Configure(&cfg)
	}
	r, err := cluster.NewRaft(cfg, fsm.New())
	if err != nil {
		c.t.Fatalf("start %s: %v", node.ID, err)
	}
	node.set(r)
}

// Kill shuts node i down abruptly (no leadership transfer, no goodbye).
func (c *RaftCluster) Kill(i int) {
	if r := c.Nodes[i].set(nil); r != nil {
		if err := r.Shutdown(); err != nil {
			c.t.Logf("shutdown %s: %v", c.Nodes[i].ID, err)
		}
	}
}

// Restart starts a killed node again from its data dir with a fresh FSM.
func (c *RaftCluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i].Raft() != nil {
		c.t.Fatalf("%s is running", c.Nodes[i].ID)
	}
	c.start(c.Nodes[i], nil)
}

// Live returns the running nodes.
func (c *RaftCluster) Live() []*RaftNode {
	var out []*RaftNode
	for _, n := range c.Nodes {
		if n.Raft() != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader returns the running node that is a ready leader, or nil.
func (c *RaftCluster) Leader() *RaftNode {
	for _, n := range c.Live() {
		if r := n.Raft(); r != nil && r.LeaderReady() {
			return n
		}
	}
	return nil
}

// WaitForLeader waits until one running node is a ready leader.
func (c *RaftCluster) WaitForLeader(timeout time.Duration) *RaftNode {
	c.t.Helper()
	var leader *RaftNode
	WaitFor(c.t, timeout, func() error {
		if leader = c.Leader(); leader == nil {
			return errors.New("no ready leader")
		}
		return nil
	})
	return leader
}

// Apply proposes cmd on the current leader.
func (c *RaftCluster) Apply(ctx context.Context, cmd fsm.Command) error {
	leader := c.Leader()
	if leader == nil {
		return cluster.ErrNoLeader
	}
	r := leader.Raft()
	if r == nil {
		return cluster.ErrNoLeader
	}
	_, err := r.Apply(ctx, cmd)
	return err
}

// WaitForSameState waits until every running node has applied the same
// index and holds an identical state.
func (c *RaftCluster) WaitForSameState(timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, func() error {
		live := c.Live()
		want := live[0].Raft().FSM().Hash()
		idx := live[0].Raft().Store().AppliedIndex()
		for _, n := range live[1:] {
			if got := n.Raft().Store().AppliedIndex(); got != idx {
				return fmt.Errorf("%s applied %d, %s applied %d", live[0].ID, idx, n.ID, got)
			}
			if n.Raft().FSM().Hash() != want {
				return fmt.Errorf("%s and %s hold different states at index %d", live[0].ID, n.ID, idx)
			}
		}
		return nil
	})
}
