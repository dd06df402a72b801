package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{Servers: 2, ReadyTimeout: time.Second},
		{Servers: 3, Workers: -1, ReadyTimeout: time.Second},
		{Servers: 3, DataDiskMB: 4, ReadyTimeout: time.Second},
		{Servers: 3},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterLifecycle starts a real three-server cluster on each
// network, kills and pauses its leader, and checks that Close leaves
// nothing behind.
func TestClusterLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real agents")
	}
	for _, mode := range []NetworkMode{NetworkLoopback, NetworkNamespaces} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == NetworkNamespaces {
				RequireNamespaces(t)
			}
			testLifecycle(t, mode)
		})
	}
}

func testLifecycle(t *testing.T, mode NetworkMode) {
	var c *Cluster
	t.Run("cluster", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Network = mode
		c = Start(t, cfg)
		if c.NetworkMode() != mode {
			t.Fatalf("asked for %s, got %s", mode, c.NetworkMode())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c.Credentials().AccessKeyID == "" {
			t.Fatal("no admin credentials")
		}
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := leader.Kill(); err != nil {
			t.Fatal(err)
		}
		if leader.Running() {
			t.Fatal("killed leader still running")
		}
		next, err := c.WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if next == leader {
			t.Fatal("the killed node is still leader")
		}
		if err := leader.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if err := next.Pause(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		if err := next.Resume(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir()); !t.Failed() && err == nil {
		t.Errorf("run directory %s left behind", c.Dir())
	}
	for _, n := range c.Nodes() {
		if n.Running() {
			t.Errorf("%s still running after Close", n.ID)
		}
	}
	if ln, ok := c.net.(*loopbackNet); ok {
		if err := ln.claim.Close(); err == nil {
			t.Errorf("loopback claim on 127.213.%d.1 still open", ln.x)
		}
	}
	if nn, ok := c.net.(*netnsNet); ok {
		ctx := context.Background()
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), netnsPrefix+nn.seq+"-") {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
		if _, err := run(ctx, "ip", "link", "show", nn.bridge); err == nil {
			t.Errorf("bridge %s left behind", nn.bridge)
		}
		for i := range c.Nodes() {
			if _, err := run(ctx, "ip", "link", "show", nn.veth(i)); err == nil {
				t.Errorf("veth %s left behind", nn.veth(i))
			}
		}
		if _, err := run(ctx, "iptables", "-w", "-n", "-L", nn.chain); err == nil {
			t.Errorf("iptables chain %s left behind", nn.chain)
		}
	}
}
