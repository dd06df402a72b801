package main

import (
	"os"
	"path/filepath"
	"slices"
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
