package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/fsm"
)

// TestRecoverLoneSurvivor: two of three voters are lost for good; the
// survivor, stopped, is recovered with a configuration naming only itself,
// elects itself when started again with every acknowledged write, and a
// new server joins it.
func TestRecoverLoneSurvivor(t *testing.T) {
	c := clustertest.NewRaftCluster(t, 3, nil)
	createAccount(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var acked []string
	for i := range 5 {
		name := fmt.Sprintf("fn-%d", i)
		if err := c.Apply(ctx, createFunctionCmd(name)); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		acked = append(acked, name)
	}
	c.WaitForSameState(10 * time.Second)

	const survivor = 2
	c.Kill(0)
	c.Kill(1)
	s := c.Nodes[survivor]
	if _, err := s.Raft().Apply(ctx, createFunctionCmd("no-quorum")); err == nil {
		t.Fatal("a lone survivor of three accepted a write")
	}
	c.Kill(survivor)

	rc := cluster.DefaultRecoverConfig()
	rc.NodeID, rc.DataDir = s.ID, s.Dir
	rc.Servers = []cluster.Server{{ID: s.ID, Address: s.Addr, Voter: true}}
	rc.Logger = clustertest.Logger(t, slog.LevelWarn)
	res, err := cluster.Recover(rc)
	if err != nil {
		t.Fatal(err)
	}
	if res.LastIndex == 0 || res.LastTerm == 0 {
		t.Fatalf("recovery reports %+v", res)
	}
	if len(res.Previous) != 3 {
		t.Fatalf("recovery reports the previous configuration %+v, want the three servers", res.Previous)
	}

	c.Restart(survivor)
	leader := c.WaitForLeader(20 * time.Second)
	if leader != s {
		t.Fatalf("leader is %s, want the survivor %s", leader.ID, s.ID)
	}
	servers, err := s.Raft().Configuration()
	if err != nil || len(servers) != 1 || servers[0].ID != s.ID || !servers[0].Voter {
		t.Fatalf("configuration after recovery: %+v, %v", servers, err)
	}
	for _, name := range acked {
		if s.Raft().Store().View().Function(account, name) == nil {
			t.Fatalf("acknowledged function %s lost in recovery", name)
		}
	}
	if _, err := s.Raft().Apply(ctx, createFunctionCmd("after-recovery")); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}

	// A new server joins the recovered cluster and takes part in its quorum.
	cfg := clustertest.FastRaftConfig(t, "fresh", t.TempDir(), clustertest.FreeAddr(t))
	fresh, err := cluster.NewRaft(cfg, fsm.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Shutdown() })
	if err := s.Raft().AddVoter(ctx, "fresh", fresh.Addr()); err != nil {
		t.Fatalf("add a new server: %v", err)
	}
	if _, err := s.Raft().Apply(ctx, createFunctionCmd("two-voters")); err != nil {
		t.Fatalf("write with the new server in the quorum: %v", err)
	}
	clustertest.WaitFor(t, 10*time.Second, func() error {
		for _, name := range append(acked, "after-recovery", "two-voters") {
			if fresh.Store().View().Function(account, name) == nil {
				return fmt.Errorf("the new server does not hold %s yet", name)
			}
		}
		return nil
	})
}

// TestRecoverRefusesUnsafeCases: every refusal says why and leaves the
// data dir as it was.
func TestRecoverRefusesUnsafeCases(t *testing.T) {
	c := clustertest.NewRaftCluster(t, 1, nil)
	createAccount(t, c)
	n := c.Nodes[0]
	self := cluster.Server{ID: n.ID, Address: n.Addr, Voter: true}
	other := cluster.Server{ID: "other", Address: "127.0.0.1:1", Voter: true}
	empty := t.TempDir()

	cases := []struct {
		name    string
		dir     string
		servers []cluster.Server
		want    string
		wantErr error
	}{
		{"empty list", n.Dir, nil, "configuration is empty", nil},
		{"local node missing", n.Dir, []cluster.Server{other}, "is not in the new configuration", nil},
		{"duplicate id", n.Dir, []cluster.Server{self, {ID: n.ID, Address: "127.0.0.1:2", Voter: true}}, "listed twice", nil},
		{"duplicate address", n.Dir, []cluster.Server{self, {ID: "other", Address: n.Addr, Voter: true}}, "share the address", nil},
		{"address without port", n.Dir, []cluster.Server{{ID: n.ID, Address: "127.0.0.1", Voter: true}}, "not host:port", nil},
		{"non-voter", n.Dir, []cluster.Server{{ID: n.ID, Address: n.Addr}}, "must be a voter", nil},
		{"no raft state", empty, []cluster.Server{self}, "", cluster.ErrNoState},
		{"agent running", n.Dir, []cluster.Server{self}, "", cluster.ErrStateLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := cluster.DefaultRecoverConfig()
			rc.NodeID, rc.DataDir, rc.Servers = n.ID, tc.dir, tc.servers
			rc.Logger = clustertest.Logger(t, slog.LevelWarn)
			_, err := cluster.Recover(rc)
			switch {
			case err == nil:
				t.Fatal("recovery was not refused")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(empty, "raft")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused recovery created Raft state in an empty dir: %v", err)
	}
	// The running node was not disturbed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Apply(ctx, createFunctionCmd("still-running")); err != nil {
		t.Fatalf("the running node after refused recoveries: %v", err)
	}
}

// TestSecondOpenerOfRaftStateIsRefused: a second agent on a data dir
// fails fast with ErrStateLocked instead of waiting on raft.db forever.
func TestSecondOpenerOfRaftStateIsRefused(t *testing.T) {
	c := clustertest.NewRaftCluster(t, 1, nil)
	n := c.Nodes[0]
	_, err := cluster.NewRaft(clustertest.FastRaftConfig(t, n.ID, n.Dir, clustertest.FreeAddr(t)), fsm.New())
	if !errors.Is(err, cluster.ErrStateLocked) {
		t.Fatalf("second NewRaft on a data dir in use: %v, want ErrStateLocked", err)
	}
}
