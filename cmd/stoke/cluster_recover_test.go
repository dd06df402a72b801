package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node"
)

// TestClusterRecoverRefuses: `stoke cluster recover` refuses, saying why,
// without a data dir, on a dir that is not an agent's, with a malformed
// --server, and while the agent still runs on the data dir.
func TestClusterRecoverRefuses(t *testing.T) {
	dir := t.TempDir()
	a := startDevAgent(t, dir)
	self := "--server=" + a.NodeID() + "=127.0.0.1:9101"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no data dir", []string{self}, "--data-dir is required"},
		{"not a data dir", []string{"--data-dir", t.TempDir(), self}, "no node-id file"},
		{"malformed server", []string{"--data-dir", dir, "--server", a.NodeID()}, "is not ID=RAFT_ADDR"},
		{"no servers", []string{"--data-dir", dir}, "configuration is empty"},
		{"agent running", []string{"--data-dir", dir, self}, "is an agent still running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryStdout(func() error { return runCluster(append([]string{"recover"}, tc.args...)) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestClusterRecoverAfterQuorumLoss performs docs/operations.md's
// "Quorum lost" procedure: of three servers two are lost for good; the
// third, stopped, is recovered with `stoke cluster recover`, started again,
// elects itself, still runs a function created before the loss, and two
// new servers join it as voters.
func TestClusterRecoverAfterQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("three-server cluster test; skipped with -short")
	}
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	agents := map[string]*testAgent{}
	var seed string
	for _, id := range []string{"s1", "s2", "s3"} {
		cfg := serverConfig(t, id, t.TempDir(), keyFile, seed)
		cfg.Cluster.BootstrapExpect = 3
		agents[id] = startTestAgent(t, cfg)
		if seed == "" {
			seed = agents[id].agent.GossipAddr()
		}
	}
	clustertest.WaitFor(t, 60*time.Second, func() error {
		for id, ta := range agents {
			if v := ta.agent.Metadata().View(); len(v.Nodes()) != 3 || len(v.AccessKeys("")) == 0 {
				return fmt.Errorf("%s: %d node records, no admin key yet", id, len(v.Nodes()))
			}
		}
		return nil
	})
	var credFile string
	clustertest.WaitFor(t, 10*time.Second, func() error {
		for _, ta := range agents {
			if p := filepath.Join(ta.cfg.DataDir, "credentials"); fileExists(p) {
				credFile = p
				return nil
			}
		}
		return fmt.Errorf("no server wrote the admin credentials yet")
	})
	survivor := agents["s3"]
	client := func(args ...string) []string {
		return append(args, "--endpoint", "http://"+survivor.cfg.HTTPAddr, "--credentials", credFile)
	}
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "app.py"), []byte("def handler(e, c):\n    return {'survived': e.get('n')}\n"), 0o644)
	captureStdout(t, func() error {
		return runFn(client("create", "survivor-fn", "--dir", code, "--runtime", "python3.11", "--handler", "app.handler"))
	})
	// The survivor must hold the function and its code package before the
	// others go: afterwards nobody else could provide them.
	clustertest.WaitFor(t, 30*time.Second, func() error {
		v := survivor.agent.Metadata().View()
		accts := v.Accounts()
		if len(accts) == 0 {
			return fmt.Errorf("no account yet")
		}
		fn := v.Function(accts[0].Id, "survivor-fn")
		if fn == nil {
			return fmt.Errorf("the survivor's replica has no survivor-fn yet")
		}
		if !survivor.agent.Blobs().HasZip(fn.GetConfig().GetBlobId()) {
			return fmt.Errorf("the survivor holds no copy of the code package yet")
		}
		return nil
	})

	// Two servers are lost for good; the survivor alone has no quorum.
	agents["s1"].stop(t)
	agents["s2"].stop(t)
	_, err := tryStdout(func() error {
		return runCluster([]string{"recover", "--data-dir", survivor.cfg.DataDir, "--server", "s3=" + survivor.cfg.RaftAddr})
	})
	if err == nil || !strings.Contains(err.Error(), "is an agent still running") {
		t.Fatalf("recover with the agent running: %v", err)
	}
	survivor.stop(t)

	// The procedure of docs/operations.md: recover, then start the agent.
	out := captureStdout(t, func() error {
		return runCluster([]string{"recover", "--data-dir", survivor.cfg.DataDir, "--server", "s3=" + survivor.cfg.RaftAddr})
	})
	if !strings.Contains(out, "recovered s3") || !strings.Contains(out, "  s1  "+agents["s1"].cfg.RaftAddr+"  voter") ||
		!strings.Contains(out, "it is now:\n  s3  "+survivor.cfg.RaftAddr+"  voter\n") {
		t.Fatalf("recover printed:\n%s", out)
	}
	survivor = startTestAgent(t, survivor.cfg)
	clustertest.WaitFor(t, 30*time.Second, func() error {
		if st := survivor.agent.Status(); st.Leader != "s3" {
			return fmt.Errorf("leader %q, state %s", st.Leader, st.RaftState)
		}
		return nil
	})
	invoke := func() error {
		out, err := tryStdout(func() error { return runFn(client("invoke", "survivor-fn", `{"n": 7}`)) })
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"survived": 7`) {
			return fmt.Errorf("invoke printed %q", out)
		}
		return nil
	}
	clustertest.WaitFor(t, 30*time.Second, invoke)

	// Two new servers join the recovered cluster as voters, which then
	// tolerates one failure again.
	fresh := startTestAgent(t, serverConfig(t, "s4", t.TempDir(), keyFile, survivor.agent.GossipAddr()))
	startTestAgent(t, serverConfig(t, "s5", t.TempDir(), keyFile, survivor.agent.GossipAddr()))
	clustertest.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := survivor.agent.ClusterRaft(ctx)
		if err != nil {
			return err
		}
		var peers []string
		for _, p := range st.Peers {
			peers = append(peers, p.Node+":"+p.Suffrage)
		}
		slices.Sort(peers)
		if strings.Join(peers, ",") != "s3:voter,s4:voter,s5:voter" {
			return fmt.Errorf("raft peers %v", peers)
		}
		// An upload needs two copies of its code package: the new
		// servers must be recorded, live nodes to take them.
		for _, id := range []string{"s4", "s5"} {
			if survivor.agent.Metadata().View().Node(id) == nil || !survivor.agent.Gossip().IsAlive(id) {
				return fmt.Errorf("%s is not a recorded live node yet", id)
			}
		}
		return nil
	})
	captureStdout(t, func() error {
		return runFn(client("create", "after-recovery", "--dir", code, "--runtime", "python3.11", "--handler", "app.handler"))
	})
	clustertest.WaitFor(t, 10*time.Second, func() error {
		v := fresh.agent.Metadata().View()
		for _, name := range []string{"survivor-fn", "after-recovery"} {
			if len(v.Accounts()) == 0 || v.Function(v.Accounts()[0].Id, name) == nil {
				return fmt.Errorf("the new server's replica has no %s yet", name)
			}
		}
		return nil
	})
	if err := invoke(); err != nil {
		t.Fatalf("invoke with the new server in the cluster: %v", err)
	}
	var got fnConfig
	if err := json.Unmarshal([]byte(captureStdout(t, func() error { return runFn(client("get", "survivor-fn", "--json")) })), &got); err != nil || got.FunctionName != "survivor-fn" {
		t.Fatalf("get after recovery: %+v, %v", got, err)
	}
}

// testAgent is an in-process agent started by a test.
type testAgent struct {
	cfg    node.Config
	agent  *node.Agent
	cancel context.CancelFunc
	done   chan error
}

// startTestAgent runs an agent until stop or the end of the test.
func startTestAgent(t *testing.T, cfg node.Config) *testAgent {
	t.Helper()
	a, err := node.New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{cfg: cfg, agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

// stop ends the agent without leaving the cluster (its peers see it fail)
// and waits until it has released its data dir.
func (ta *testAgent) stop(t *testing.T) {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	if err := <-ta.done; err != nil {
		t.Errorf("%s: %v", ta.cfg.NodeID, err)
	}
	ta.cancel = nil
}

// serverConfig is a secure (non-dev) server on loopback with fast timers,
// fixed HTTP and Raft ports (so a restart keeps its addresses) and the
// cluster key in keyFile.
func serverConfig(t *testing.T, id, dir, keyFile string, join ...string) node.Config {
	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.ClusterKeyFile = id, dir, keyFile
	cfg.HTTPAddr, cfg.RaftAddr = clustertest.FreeAddr(t), clustertest.FreeAddr(t)
	cfg.RaftHeartbeatTimeout, cfg.RaftElectionTimeout = 400*time.Millisecond, 400*time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = clustertest.Logger(t, slog.LevelWarn).With("node", id)
	cfg.Worker.InsecureNoSandbox = os.Geteuid() != 0
	cc := &cfg.Cluster
	cc.Server = true
	for _, j := range join {
		if j != "" {
			cc.Join = append(cc.Join, j)
		}
	}
	cc.GossipAddr, cc.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cc.ReconcileInterval, cc.DrainTimeout = 300*time.Millisecond, 2*time.Second
	cc.MemoryMB, cc.CPUs = 1024, 2
	fast := clustertest.FastGossipConfig(t, id)
	cc.TuneGossip = func(g *cluster.GossipConfig) {
		g.RetryJoinInterval, g.ProbeInterval, g.ProbeTimeout = fast.RetryJoinInterval, fast.ProbeInterval, fast.ProbeTimeout
		g.SuspicionMult, g.SuspicionMaxTimeoutMult = fast.SuspicionMult, fast.SuspicionMaxTimeoutMult
		g.GossipInterval, g.PushPullInterval, g.TCPTimeout = fast.GossipInterval, fast.PushPullInterval, fast.TCPTimeout
		g.GossipToTheDeadTime, g.LoadInterval, g.LeavePropagateDelay = fast.GossipToTheDeadTime, fast.LoadInterval, fast.LeavePropagateDelay
	}
	return cfg
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
