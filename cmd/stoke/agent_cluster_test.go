package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/node"
)

func TestConfigFileAppliesAndFlagsWin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	err := os.WriteFile(path, []byte(`
node_id = "s1"
server = true
bootstrap_expect = 3
join = ["10.0.0.1:7946", "10.0.0.2:7946"]
gossip_addr = "0.0.0.0:7000"
reap_timeout = "10m"
log_level = "debug"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	level := "info"
	if err := loadConfigFile(path, &cfg, &level); err != nil {
		t.Fatal(err)
	}
	cc := cfg.Cluster
	if cfg.NodeID != "s1" || !cc.Server || cc.BootstrapExpect != 3 || cc.GossipAddr != "0.0.0.0:7000" ||
		cc.ReapTimeout != 10*time.Minute || level != "debug" || !slices.Equal(cc.Join, []string{"10.0.0.1:7946", "10.0.0.2:7946"}) {
		t.Fatalf("config file not applied: %+v level=%s", cfg, level)
	}
	// A --join on the command line replaces the file's list.
	joinFromFlags = false
	j := (*joinFlag)(&cfg.Cluster.Join)
	_ = j.Set("10.0.0.9:7946")
	if !slices.Equal(cfg.Cluster.Join, []string{"10.0.0.9:7946"}) {
		t.Fatalf("join after flag: %v", cfg.Cluster.Join)
	}
	if got := configFlag([]string{"--server", "--config=" + path}); got != path {
		t.Fatalf("configFlag = %q", got)
	}
	if err := os.WriteFile(path, []byte("srever = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := loadConfigFile(path, &cfg, &level); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

// TestAgentRefusesLoopbackAdvertiseToOtherMachines: a worker started with
// the default addresses and a --join would gossip a reachable address but
// advertise loopback Raft and HTTP; it refuses to start, naming the flag.
func TestAgentRefusesLoopbackAdvertiseToOtherMachines(t *testing.T) {
	dir := t.TempDir()
	err := runAgent([]string{"--data-dir", dir, "--join", "10.0.0.11:7946"})
	if err == nil || !strings.Contains(err.Error(), "--raft-advertise") {
		t.Fatalf("agent with default addresses and --join: %v, want a refusal naming --raft-advertise", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "node-id")); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the refused agent touched its data dir: %v", serr)
	}
	err = runAgent([]string{"--data-dir", dir, "--join", "10.0.0.11:7946", "--raft-advertise", "10.0.0.12:9101"})
	if err == nil || !strings.Contains(err.Error(), "--http-advertise") {
		t.Fatalf("agent with a loopback HTTP address and --join: %v, want a refusal naming --http-advertise", err)
	}

	base := node.DefaultConfig()
	withJoin := base
	withJoin.Cluster.Join = []string{"10.0.0.11:7946"}
	reachable := withJoin
	reachable.RaftAdvertise, reachable.Cluster.HTTPAdvertise = "10.0.0.12:9101", "10.0.0.12:9000"
	onLoopback := withJoin
	onLoopback.Cluster.GossipAddr, onLoopback.Cluster.GRPCAddr = "127.0.0.1:7946", "127.0.0.1:9100"
	lone := base
	lone.Bootstrap = true
	waiting := base // neither bootstraps nor joins: it can only be joined
	for name, tc := range map[string]struct {
		cfg     node.Config
		refused bool
	}{
		"defaults with --join":      {withJoin, true},
		"advertised reachable":      {reachable, false},
		"one machine, all loopback": {onLoopback, false},
		"lone bootstrapping node":   {lone, false},
		"waiting to be joined":      {waiting, true},
	} {
		if err := checkAdvertised(tc.cfg); (err != nil) != tc.refused {
			t.Errorf("%s: err = %v, want refused=%v", name, err, tc.refused)
		}
	}
}
