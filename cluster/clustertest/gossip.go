package clustertest

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
)

// FastGossipConfig returns gossip settings for in-process nodes on
// 127.0.0.1: memberlist's local profile with probe and gossip intervals
// shortened so a dead node is declared within a few seconds, yet not so
// short that a loaded 2-core machine under the race detector flaps.
func FastGossipConfig(t testing.TB, id string) cluster.GossipConfig {
	cfg := cluster.DefaultGossipConfig()
	cfg.Meta = cluster.NodeMeta{ID: id, Role: cluster.RoleWorker, BuildVersion: "test"}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.RetryJoinInterval = 200 * time.Millisecond
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.ProbeTimeout = 100 * time.Millisecond
	cfg.SuspicionMult = 3
	cfg.SuspicionMaxTimeoutMult = 4
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = time.Second
	cfg.TCPTimeout = time.Second
	cfg.GossipToTheDeadTime = 2 * time.Second
	cfg.LoadInterval = 100 * time.Millisecond
	cfg.LeavePropagateDelay = 300 * time.Millisecond
	cfg.ReconnectInterval = 300 * time.Millisecond
	cfg.SecretKey = []byte("0123456789abcdef0123456789abcdef")
	cfg.Logger = Logger(t, slog.LevelWarn)
	return cfg
}

// StartGossips starts n gossip nodes named prefix0..prefixN-1 that join
// the first one, waits until every node sees every other alive, and shuts
// them down when the test ends. configure, if set, adjusts each config.
func StartGossips(t testing.TB, prefix string, n int, configure func(*cluster.GossipConfig)) []*cluster.Gossip {
	t.Helper()
	var out []*cluster.Gossip
	for i := range n {
		cfg := FastGossipConfig(t, fmt.Sprintf("%s%d", prefix, i))
		if i > 0 {
			cfg.Join = []string{out[0].Addr()}
		}
		if configure != nil {
			configure(&cfg)
		}
		g, err := cluster.NewGossip(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Shutdown() })
		out = append(out, g)
	}
	WaitFor(t, 20*time.Second, func() error {
		for _, g := range out {
			if got := g.NumAlive(); got != n {
				return fmt.Errorf("%s sees %d alive of %d", g.LocalID(), got, n)
			}
		}
		return nil
	})
	return out
}
