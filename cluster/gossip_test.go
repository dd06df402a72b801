package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
)

func TestGossipCarriesMetaAndLoad(t *testing.T) {
	gs := clustertest.StartGossips(t, "g", 3, func(c *cluster.GossipConfig) {
		if c.Meta.ID == "g0" {
			c.Meta.Role = cluster.RoleServer
			c.Meta.HTTPAddr, c.Meta.GRPCAddr, c.Meta.RaftAddr = "127.0.0.1:9000", "127.0.0.1:9100", "127.0.0.1:9101"
			c.Meta.MemoryMB, c.Meta.CPUs = 2048, 2
		}
	})
	for _, g := range gs {
		m, ok := g.Member("g0")
		if !ok || m.Role != cluster.RoleServer || m.GRPCAddr != "127.0.0.1:9100" || m.MemoryMB != 2048 ||
			m.CPUs != 2 || m.BuildVersion != "test" || m.GossipAddr != gs[0].Addr() {
			t.Fatalf("%s sees g0 as %+v", g.LocalID(), m)
		}
		if !g.IsAlive("g1") || g.IsAlive("nobody") {
			t.Fatalf("%s: IsAlive wrong", g.LocalID())
		}
	}
	events, cancel := gs[2].Subscribe(16)
	defer cancel()
	load := cluster.LoadSummary{SandboxesIdle: 3, SandboxesBusy: 2, Inflight: 5, MemoryUsedMB: 640}
	gs[0].SetLoad(load)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		for _, g := range gs {
			if m, _ := g.Member("g0"); m.Load != load {
				return fmt.Errorf("%s sees g0's load %+v", g.LocalID(), m.Load)
			}
		}
		return nil
	})
	select {
	case ev := <-events:
		if ev.Kind != cluster.EventUpdate || ev.Member.ID != "g0" {
			t.Fatalf("event %v for %s, want an update of g0", ev.Kind, ev.Member.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update event for the load change")
	}
}

// TestGossipTellsLeaveFromFailure: a node that leaves is left on every
// survivor, a node that stops without a word is dead; both are forgotten
// on request, and only then.
func TestGossipTellsLeaveFromFailure(t *testing.T) {
	gs := clustertest.StartGossips(t, "n", 4, nil)
	events, cancel := gs[0].Subscribe(64)
	defer cancel()
	if err := gs[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := gs[3].Shutdown(); err != nil {
		t.Fatal(err)
	}
	bound := gs[0].Config().DetectionBound(4)
	clustertest.WaitFor(t, 2*bound+5*time.Second, func() error {
		for _, g := range gs[:2] {
			if m, _ := g.Member("n2"); m.Status != cluster.StatusLeft {
				return fmt.Errorf("%s sees n2 %v, want left", g.LocalID(), m.Status)
			}
			if m, _ := g.Member("n3"); m.Status != cluster.StatusDead {
				return fmt.Errorf("%s sees n3 %v, want dead", g.LocalID(), m.Status)
			}
		}
		return nil
	})
	seen := map[string]cluster.EventKind{}
	for len(seen) < 2 {
		select {
		case ev := <-events:
			if ev.Kind == cluster.EventLeave || ev.Kind == cluster.EventFail {
				seen[ev.Member.ID] = ev.Kind
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events seen: %v", seen)
		}
	}
	if seen["n2"] != cluster.EventLeave || seen["n3"] != cluster.EventFail {
		t.Fatalf("events %v: want n2 leave, n3 fail", seen)
	}
	if gs[0].Forget("n1") {
		t.Fatal("Forget dropped an alive member")
	}
	if !gs[0].Forget("n3") {
		t.Fatal("Forget kept a dead member")
	}
	if _, ok := gs[0].Member("n3"); ok || gs[0].NumAlive() != 2 {
		t.Fatalf("after Forget: members %v", gs[0].Members())
	}
}

func TestGossipWithDifferentKeysCannotJoin(t *testing.T) {
	a := clustertest.StartGossips(t, "a", 1, nil)[0]
	cfg := clustertest.FastGossipConfig(t, "b0")
	cfg.SecretKey = []byte("another key, 32 bytes long......")
	b, err := cluster.NewGossip(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if _, err := b.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node with another gossip key joined")
	}
	if a.NumAlive() != 1 || b.NumAlive() != 1 {
		t.Fatalf("members leaked across keys: a=%v b=%v", a.Members(), b.Members())
	}
}

func TestGossipConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*cluster.GossipConfig){
		"no id":         func(c *cluster.GossipConfig) { c.Meta.ID = "" },
		"bad key":       func(c *cluster.GossipConfig) { c.SecretKey = []byte("short") },
		"bad bind":      func(c *cluster.GossipConfig) { c.BindAddr = "nope" },
		"probe timeout": func(c *cluster.GossipConfig) { c.ProbeTimeout = c.ProbeInterval },
	} {
		cfg := cluster.DefaultGossipConfig()
		cfg.Meta.ID = "x"
		mutate(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

// TestGossipShutdownDoesNotWaitForALoadBroadcast: shutting down while a
// load change (a draining agent's flag) is still being broadcast must not
// wait for the broadcast, which cannot complete once memberlist has
// stopped. Found by the chaos suite: graceful stops often took 10 s,
// memberlist's TCP timeout. Here gossip and probe rounds, which carry
// broadcasts, are a minute apart: the peer learns the change through a
// push-pull sync while its broadcast stays pending, and the wait for the
// shutdown is a tenth of that minute.
func TestGossipShutdownDoesNotWaitForALoadBroadcast(t *testing.T) {
	gs := clustertest.StartGossips(t, "s", 2, func(c *cluster.GossipConfig) {
		c.TCPTimeout, c.GossipInterval, c.ProbeInterval = time.Minute, time.Minute, time.Minute
		c.PushPullInterval = 200 * time.Millisecond
	})
	load := cluster.LoadSummary{Draining: true}
	gs[0].SetLoad(load)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if m, _ := gs[1].Member("s0"); m.Load != load {
			return fmt.Errorf("s1 sees s0's load %+v", m.Load)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- gs[0].Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Shutdown still waiting for the load broadcast")
	}
}

// TestGossipHealsAfterAPartition: a node cut off from the others long
// enough for both sides to declare each other dead, and for memberlist to
// stop gossiping to the dead, rejoins once the link is back. Found by the
// chaos suite's worker partition: after a 60 s cut the worker and the rest
// of the cluster went on holding each other dead for good.
func TestGossipHealsAfterAPartition(t *testing.T) {
	cuts := map[string]*clustertest.CutTransport{}
	gs := clustertest.StartGossips(t, "p", 3, func(c *cluster.GossipConfig) {
		cuts[c.Meta.ID] = clustertest.CutConfig(t, c)
		c.GossipToTheDeadTime = 100 * time.Millisecond
	})
	cuts["p2"].Cut(gs[0].Addr(), gs[1].Addr())
	cuts["p0"].Cut(gs[2].Addr())
	cuts["p1"].Cut(gs[2].Addr())
	sees := func(g *cluster.Gossip, id string, want cluster.MemberStatus) error {
		if m, _ := g.Member(id); m.Status != want {
			return fmt.Errorf("%s sees %s %v, want %v", g.LocalID(), id, m.Status, want)
		}
		return nil
	}
	clustertest.WaitFor(t, 20*time.Second, func() error {
		return errors.Join(sees(gs[0], "p2", cluster.StatusDead), sees(gs[1], "p2", cluster.StatusDead),
			sees(gs[2], "p0", cluster.StatusDead), sees(gs[2], "p1", cluster.StatusDead))
	})
	for _, c := range cuts {
		c.Heal()
	}
	clustertest.WaitFor(t, 20*time.Second, func() error {
		return errors.Join(sees(gs[0], "p2", cluster.StatusAlive), sees(gs[1], "p2", cluster.StatusAlive),
			sees(gs[2], "p0", cluster.StatusAlive), sees(gs[2], "p1", cluster.StatusAlive))
	})
}
