package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
)

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testConfig returns a dev-mode single-node configuration in dir.
func testConfig(t testing.TB, dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr = freePort(t)
	cfg.RaftAddr = freePort(t)
	cfg.Cluster.GossipAddr = "127.0.0.1:0"
	cfg.Cluster.GRPCAddr = "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.Dev = true
	cfg.RaftHeartbeatTimeout = 200 * time.Millisecond
	cfg.RaftElectionTimeout = 200 * time.Millisecond
	cfg.Logger = clustertest.Logger(t, slog.LevelWarn)
	return cfg
}

// startAgent runs an agent until the test ends and waits until it is ready.
func startAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v", err)
		}
	})
	clustertest.WaitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready = %d", resp.StatusCode)
		}
		if len(a.Metadata().View().AccessKeys("")) == 0 {
			return errors.New("admin key not created yet")
		}
		return nil
	})
	return a
}

func TestAgentBootstrapsAdminOnceAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	a := startAgent(t, cfg)

	resp, err := http.Get("http://" + a.HTTPAddr() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var health struct{ Status, Node string }
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil || health.Status != "ok" || health.Node != a.NodeID() {
		t.Fatalf("health = %+v, %v", health, err)
	}
	resp.Body.Close()

	creds, err := ReadCredentials(cfg.credentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(cfg.credentialsFile()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	v := a.Metadata().View()
	key := v.AccessKey(creds.AccessKeyID)
	if key == nil || !key.Admin || key.AccountId != creds.AccountID || v.Account(creds.AccountID) == nil {
		t.Fatalf("admin key not in the replicated store: %v", key)
	}
	secret, err := a.Sealer().Open(key.SecretSealed, KeyContext(key.Id))
	if err != nil || string(secret) != creds.SecretAccessKey {
		t.Fatalf("stored secret does not open to the file's secret: %v", err)
	}
	nodeID := a.NodeID()

	// Restart on the same data dir: same node, same account, no second key.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.HTTPAddr = freePort(t)
	b := startAgent(t, cfg2)
	if b.NodeID() != nodeID {
		t.Fatalf("node id changed across restart: %s -> %s", nodeID, b.NodeID())
	}
	v = b.Metadata().View()
	if n := len(v.AccessKeys("")); n != 1 {
		t.Fatalf("%d access keys after restart, want 1", n)
	}
	if n := len(v.Accounts()); n != 1 {
		t.Fatalf("%d accounts after restart, want 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no data dir":  func(c *Config) { c.DataDir = "" },
		"bad region":   func(c *Config) { c.Region = "Not A Region" },
		"bad http":     func(c *Config) { c.HTTPAddr = "nope" },
		"no logger":    func(c *Config) { c.Logger = nil },
		"zero timeout": func(c *Config) { c.ShutdownTimeout = 0 },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

// TestUncommittedCredentialsAreRetired: a credentials file whose key the
// cluster does not hold (written by a leader that lost its leadership
// before committing it) is moved aside rather than left to mislead.
func TestUncommittedCredentialsAreRetired(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	a := startAgent(t, cfg)
	stale := Credentials{AccountID: "111111111111", AccessKeyID: "AKIASTALE0000000000", SecretAccessKey: "x", Region: "local", Endpoint: "http://" + a.HTTPAddr()}
	if err := writeCredentials(cfg.credentialsFile(), stale); err != nil {
		t.Fatal(err)
	}
	a.retireUncommittedCredentials()
	if _, err := os.Stat(cfg.credentialsFile()); !os.IsNotExist(err) {
		t.Fatalf("stale credentials file still in place: %v", err)
	}
	if c, err := ReadCredentials(cfg.credentialsFile() + ".uncommitted"); err != nil || c.AccessKeyID != stale.AccessKeyID {
		t.Fatalf("moved-aside file: %v %+v", err, c)
	}
}
