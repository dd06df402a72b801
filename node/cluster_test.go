package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// testCluster runs in-process agents that find each other through gossip,
// with real sockets on loopback and fast timers.
type testCluster struct {
	t       testing.TB
	keyFile string
	agents  map[string]*runningAgent
	order   []string
}

type runningAgent struct {
	cfg    Config
	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

func newTestCluster(t testing.TB) *testCluster {
	return &testCluster{t: t, keyFile: filepath.Join(t.TempDir(), "cluster.key"), agents: map[string]*runningAgent{}}
}

// clusterConfig returns a secure (non-dev) configuration for node id.
func (c *testCluster) clusterConfig(id string, server bool, join ...string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = c.t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = freePort(c.t)
	cfg.ClusterKeyFile = c.keyFile
	cfg.RaftHeartbeatTimeout = 400 * time.Millisecond
	cfg.RaftElectionTimeout = 400 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = clustertest.Logger(c.t, slog.LevelWarn).With("node", id)
	cc := &cfg.Cluster
	cc.Server = server
	cc.Join = join
	cc.GossipAddr = "127.0.0.1:0"
	cc.GRPCAddr = "127.0.0.1:0"
	cc.ReapTimeout = 3 * time.Second
	cc.ReconcileInterval = 300 * time.Millisecond
	cc.DrainTimeout = 2 * time.Second
	cc.MemoryMB, cc.CPUs = 1024, 2
	cc.TuneGossip = fastGossip(c.t)
	return cfg
}

// fastGossip applies clustertest's fast memberlist timers.
func fastGossip(t testing.TB) func(*cluster.GossipConfig) {
	fast := clustertest.FastGossipConfig(t, "x")
	return func(g *cluster.GossipConfig) {
		g.RetryJoinInterval, g.ProbeInterval, g.ProbeTimeout = fast.RetryJoinInterval, fast.ProbeInterval, fast.ProbeTimeout
		g.SuspicionMult, g.SuspicionMaxTimeoutMult = fast.SuspicionMult, fast.SuspicionMaxTimeoutMult
		g.GossipInterval, g.PushPullInterval, g.TCPTimeout = fast.GossipInterval, fast.PushPullInterval, fast.TCPTimeout
		g.GossipToTheDeadTime, g.LoadInterval, g.LeavePropagateDelay = fast.GossipToTheDeadTime, fast.LoadInterval, fast.LeavePropagateDelay
	}
}

func (c *testCluster) start(cfg Config) *Agent {
	c.t.Helper()
	a, err := New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{cfg: cfg, agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	if _, ok := c.agents[cfg.NodeID]; !ok {
		c.order = append(c.order, cfg.NodeID)
		c.t.Cleanup(func() { c.stop(cfg.NodeID) })
	}
	c.agents[cfg.NodeID] = ra
	return a
}

// stop ends an agent abruptly (no leave): its peers see a failure.
func (c *testCluster) stop(id string) {
	ra := c.agents[id]
	if ra == nil || ra.cancel == nil {
		return
	}
	ra.cancel()
	if err := <-ra.done; err != nil {
		c.t.Errorf("%s run: %v", id, err)
	}
	ra.cancel = nil
}

func (c *testCluster) agent(id string) *Agent { return c.agents[id].agent }

// live returns the running agents in start order.
func (c *testCluster) live() []*Agent {
	var out []*Agent
	for _, id := range c.order {
		if ra := c.agents[id]; ra.cancel != nil {
			out = append(out, ra.agent)
		}
	}
	return out
}

func (c *testCluster) leader() *Agent {
	for _, a := range c.live() {
		if a.raft.LeaderReady() {
			return a
		}
	}
	return nil
}

func raftIDs(t *testing.T, a *Agent) (voters, nonvoters []string) {
	servers, err := a.raft.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.Voter {
			voters = append(voters, s.ID)
		} else {
			nonvoters = append(nonvoters, s.ID)
		}
	}
	slices.Sort(voters)
	slices.Sort(nonvoters)
	return voters, nonvoters
}

func adminAccount(a *Agent) string {
	if accts := a.Metadata().View().Accounts(); len(accts) > 0 {
		return accts[0].Id
	}
	return ""
}

func createFunction(ctx context.Context, a *Agent, account, name string) error {
	_, err := a.Metadata().Apply(ctx, &fsmpb.CreateFunctionCmd{
		Header: &fsmpb.Header{AccountId: account},
		Name:   name,
		Config: &fsmpb.FunctionConfig{Runtime: "python3.12", Handler: "app.handler", MemoryMb: 128, TimeoutS: 3,
			EphemeralMb: 512, CodeSha256: "sha", BlobId: "blob"},
	})
	return err
}

// TestClusterLifecycle walks one cluster through the scenarios:
// forming from gossip alone, writes through any node, a graceful leave, a
// killed worker reaped, and a killed leader replaced and rejoining.
func TestClusterLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("five-node cluster test; skipped with -short")
	}
	c := newTestCluster(t)
	first := c.clusterConfig("s1", true)
	first.Cluster.BootstrapExpect = 3
	s1 := c.start(first)
	seed := s1.GossipAddr()
	for _, id := range []string{"s2", "s3"} {
		cfg := c.clusterConfig(id, true, seed)
		cfg.Cluster.BootstrapExpect = 3
		c.start(cfg)
	}
	c.start(c.clusterConfig("w1", false, seed))
	c.start(c.clusterConfig("w2", false, seed))

	t.Run("forms from gossip", func(t *testing.T) {
		clustertest.WaitFor(t, 30*time.Second, func() error {
			for _, a := range c.live() {
				voters, nonvoters := raftIDs(t, a)
				if !slices.Equal(voters, []string{"s1", "s2", "s3"}) || !slices.Equal(nonvoters, []string{"w1", "w2"}) {
					return fmt.Errorf("%s: voters %v, nonvoters %v", a.NodeID(), voters, nonvoters)
				}
				if n := len(a.Metadata().View().Nodes()); n != 5 {
					return fmt.Errorf("%s holds %d node records", a.NodeID(), n)
				}
				if adminAccount(a) == "" {
					return fmt.Errorf("%s: replica has no admin account yet", a.NodeID())
				}
			}
			return nil
		})
		rec := c.agent("w1").Metadata().View().Node("s2")
		if rec.Role != "server" || rec.GrpcAddr != c.agent("s2").GRPCAddr() || rec.MemoryMb != 1024 {
			t.Fatalf("node record of s2: %v", rec)
		}
	})

	account := adminAccount(s1)
	t.Run("write through a worker is visible everywhere", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := createFunction(ctx, c.agent("w1"), account, "via-worker"); err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 2*time.Second, func() error {
			for _, a := range c.live() {
				if a.Metadata().View().Function(account, "via-worker") == nil {
					return fmt.Errorf("%s does not see the function", a.NodeID())
				}
			}
			return nil
		})
		for _, a := range c.live() {
			if err := createFunction(ctx, a, account, "via-"+a.NodeID()); err != nil {
				t.Fatalf("write through %s: %v", a.NodeID(), err)
			}
			v, err := a.Metadata().ConsistentView(ctx)
			if err != nil || v.Function(account, "via-"+a.NodeID()) == nil {
				t.Fatalf("consistent read on %s: %v", a.NodeID(), err)
			}
		}
		// An FSM refusal crosses the wire with its code.
		err := createFunction(ctx, c.agent("w2"), account, "via-worker")
		var fe *fsm.Error
		if !errors.As(err, &fe) || fe.Code != fsm.CodeConflict {
			t.Fatalf("duplicate create through a worker: %v, want a Conflict refusal", err)
		}
	})

	t.Run("graceful leave", func(t *testing.T) {
		events, cancel := c.agent("s2").Gossip().Subscribe(256)
		defer cancel()
		ctx, cancelCtx := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancelCtx()
		if err := c.agent("w1").Leave(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.agents["w1"].done:
			c.agents["w1"].cancel = nil
		case <-time.After(10 * time.Second):
			t.Fatal("agent did not stop after leaving")
		}
		clustertest.WaitFor(t, 10*time.Second, func() error {
			for _, a := range c.live() {
				if _, non := raftIDs(t, a); slices.Contains(non, "w1") {
					return fmt.Errorf("%s still has w1 in raft", a.NodeID())
				}
				rows, _ := a.ClusterMembers()
				for _, r := range rows {
					if r.Node == "w1" {
						return fmt.Errorf("%s still lists w1 (%s)", a.NodeID(), r.Status)
					}
				}
			}
			return nil
		})
		for {
			select {
			case ev := <-events:
				if ev.Member.ID == "w1" && ev.Kind == cluster.EventFail {
					t.Fatal("the leave was recorded as a failure")
				}
				continue
			default:
			}
			break
		}
	})

	t.Run("killed worker is declared dead and reaped", func(t *testing.T) {
		c.stop("w2")
		bound := c.agent("s1").Gossip().Config().DetectionBound(4)
		clustertest.WaitFor(t, bound+5*time.Second, func() error {
			for _, a := range c.live() {
				if m, ok := a.Gossip().Member("w2"); ok && m.Status != cluster.StatusDead {
					return fmt.Errorf("%s sees w2 %v", a.NodeID(), m.Status)
				}
			}
			return nil
		})
		clustertest.WaitFor(t, 3*time.Second+15*time.Second, func() error {
			for _, a := range c.live() {
				if _, non := raftIDs(t, a); slices.Contains(non, "w2") {
					return fmt.Errorf("%s still has w2 in raft", a.NodeID())
				}
				if a.Metadata().View().Node("w2") != nil {
					return fmt.Errorf("%s still has w2's record", a.NodeID())
				}
			}
			return nil
		})
	})

	t.Run("leader killed, replaced, restarted", func(t *testing.T) {
		old := c.leader()
		if old == nil {
			t.Fatal("no leader")
		}
		oldID := old.NodeID()
		oldCfg := c.agents[oldID].cfg
		c.stop(oldID)
		clustertest.WaitFor(t, 15*time.Second, func() error {
			if l := c.leader(); l == nil || l.NodeID() == oldID {
				return errors.New("no new leader yet")
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		survivors := c.live()
		for _, a := range survivors {
			if err := createFunction(ctx, a, account, "after-failover-"+a.NodeID()); err != nil {
				t.Fatalf("write through %s after failover: %v", a.NodeID(), err)
			}
		}
		survivor := survivors[len(survivors)-1]
		// Same data dir and the same addresses, as a restarted machine has.
		restart := oldCfg
		restart.HTTPAddr = "127.0.0.1:0"
		restart.Cluster.GossipAddr = old.GossipAddr()
		restart.Cluster.GRPCAddr = old.GRPCAddr()
		restart.Cluster.Join = []string{survivor.GossipAddr()}
		back := c.start(restart)
		clustertest.WaitFor(t, 20*time.Second, func() error {
			want := c.leader()
			if want == nil {
				return errors.New("no leader")
			}
			if got, exp := back.raft.Store().AppliedIndex(), want.raft.Store().AppliedIndex(); got < exp {
				return fmt.Errorf("restarted %s applied %d, leader %d", oldID, got, exp)
			}
			for _, a := range survivors {
				if back.Metadata().View().Function(account, "after-failover-"+a.NodeID()) == nil {
					return fmt.Errorf("restarted %s lacks the write made through %s", oldID, a.NodeID())
				}
			}
			if m, ok := survivor.Gossip().Member(oldID); !ok || !m.Alive() {
				return fmt.Errorf("%s not alive in gossip again", oldID)
			}
			return nil
		})
	})
}
