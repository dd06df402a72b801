package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// frozen reports whether the kernel says the cgroup of sandbox id is
// frozen (not merely freezing).
func frozen(p *Pool, id string) (bool, error) {
	p.mu.Lock()
	var cg sandboxCgroup
	for sb := range p.sandboxes {
		if sb.id == id {
			cg = sb.cg
		}
	}
	p.mu.Unlock()
	switch cg := cg.(type) {
	case *sandboxCgroupV1:
		b, err := os.ReadFile(filepath.Join(cgroupRoot, "freezer", cg.path, "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN", err
	case *sandboxCgroupV2:
		b, err := os.ReadFile(filepath.Join(cgroupRoot, cg.path, "cgroup.events"))
		return strings.Contains(string(b), "frozen 1"), err
	}
	return false, fmt.Errorf("sandbox %s not found", id)
}

// TestIdleSandboxIsFrozen: a function that leaves a goroutine spinning is
// frozen by the kernel once its sandbox is idle, and the next invocation
// thaws it and runs warm on it.
func TestIdleSandboxIsFrozen(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	if !p.cgroups.canFreeze() {
		t.Skip("no cgroup freezer on this host")
	}
	fn := goSpec("spinner")
	first := invoke(t, p, fn, map[string]string{"op": "spin"})
	waitFor(t, 10*time.Second, func() error {
		if ok, err := frozen(p, first.SandboxID); !ok {
			return fmt.Errorf("idle sandbox not frozen (%v)", err)
		}
		return nil
	})
	res := invoke(t, p, fn, map[string]string{"op": "counter"})
	if got := decode[int](t, res); res.SandboxID != first.SandboxID || res.ColdStart || got != 2 {
		t.Errorf("after the thaw: sandbox %s (want %s), cold %v, counter %d (want 2)", res.SandboxID, first.SandboxID, res.ColdStart, got)
	}
}

// TestKeepIdleRunning: with KeepIdleRunning, an idle sandbox is never
// frozen (the pool's own state says when it is idle).
func TestKeepIdleRunning(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { c.KeepIdleRunning = true })
	if !p.cgroups.canFreeze() {
		t.Skip("no cgroup freezer on this host")
	}
	fn := goSpec("running")
	res := invoke(t, p, fn, map[string]string{"op": "echo"})
	waitFor(t, 10*time.Second, func() error {
		if n := p.Stats().ByKey[fn.Key].Idle; n != 1 {
			return fmt.Errorf("%d idle", n)
		}
		return nil
	})
	if ok, err := frozen(p, res.SandboxID); ok || err != nil {
		t.Errorf("idle sandbox frozen %v (%v) with KeepIdleRunning", ok, err)
	}
}
