package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConcurrentInvocationsAcrossSandboxes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 10 cold starts")
	}
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) {
		c.MemoryBudgetMB = 10 * 256 // room for exactly 10 sandboxes
		c.QueueTimeout = time.Minute
	})
	fn := goSpec("fanout")
	var wg sync.WaitGroup
	var mu sync.Mutex
	sandboxes := map[string]int{}
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("value-%d", i)
			res, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{"op":"echo","value":"` + v + `","n":` + strconv.Itoa(i) + `}`)})
			if err != nil {
				errs <- err
				return
			}
			if !strings.Contains(string(res.Payload), `"value":"`+v+`"`) || res.FunctionError != "" {
				errs <- fmt.Errorf("invocation %d got %s", i, res.Payload)
				return
			}
			mu.Lock()
			sandboxes[res.SandboxID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(sandboxes) > 10 {
		t.Errorf("%d sandboxes for a budget of 10", len(sandboxes))
	}
	s := p.Stats()
	if s.MemoryUsedMB > s.MemoryBudgetMB || s.Busy != 0 || s.Queued != 0 || s.Idle != len(sandboxes) {
		t.Errorf("stats after the burst: %+v (sandboxes used: %d)", s, len(sandboxes))
	}
}

// startSlow starts an invocation that sleeps for ms milliseconds, waits
// until the pool reports a busy sandbox, and returns a channel that
// receives the invocation's Result when it ends.
func startSlow(t *testing.T, p *Pool, fn FunctionSpec, ms int) <-chan Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() {
		res, _ := p.Invoke(context.Background(), fn, Invocation{Payload: []byte(`{"op":"sleep","n":` + strconv.Itoa(ms) + `}`)})
		ch <- res
	}()
	waitFor(t, 30*time.Second, func() error {
		if p.Stats().Busy == 0 {
			return errors.New("not busy yet")
		}
		return nil
	})
	return ch
}

func TestSaturationAndQueue(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) {
		c.MemoryBudgetMB = 256 // one sandbox
		c.MaxQueue = 1
		c.QueueTimeout = 200 * time.Millisecond
	})
	fn := goSpec("only")
	done := startSlow(t, p, fn, 3000)

	_, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`), NoQueue: true})
	if !errors.Is(err, ErrSaturated) {
		t.Errorf("NoQueue on a full node: %v, want ErrSaturated", err)
	}
	other := goSpec("other")
	if _, err := p.Invoke(t.Context(), other, Invocation{Payload: []byte(`{}`)}); !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("queued past QueueTimeout: %v, want ErrQueueTimeout", err)
	}
	// Fill the queue (1), then one more is refused at once.
	queued := make(chan error, 1)
	go func() {
		_, err := p.Invoke(context.Background(), fn, Invocation{Payload: []byte(`{}`)})
		queued <- err
	}()
	waitFor(t, 10*time.Second, func() error {
		if p.Stats().Queued != 1 {
			return errors.New("not queued yet")
		}
		return nil
	})
	if _, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`)}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("beyond MaxQueue: %v, want ErrQueueFull", err)
	}
	if err := <-queued; !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("queued invocation: %v", err)
	}
	if res := <-done; res.FunctionError != "" {
		t.Errorf("slow invocation: %s", res.Payload)
	}
}

func TestQueuedInvocationGetsTheSandbox(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) {
		c.MemoryBudgetMB = 256
		c.QueueTimeout = time.Minute
	})
	fn := goSpec("handoff")
	done := startSlow(t, p, fn, 300)
	res, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{"op":"echo","value":"queued"}`)})
	if err != nil || !strings.Contains(string(res.Payload), "queued") {
		t.Fatalf("queued invocation: %v %s", err, res.Payload)
	}
	first := <-done
	if res.SandboxID != first.SandboxID || res.ColdStart {
		t.Errorf("the queued invocation did not reuse the freed sandbox")
	}
}

func TestEvictionLeastRecentlyUsed(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { c.MemoryBudgetMB = 512 })
	a, b, c := goSpec("a"), goSpec("b"), goSpec("c")
	invoke(t, p, a, map[string]string{})
	invoke(t, p, b, map[string]string{})
	invoke(t, p, a, map[string]string{}) // a is now the most recently used
	invoke(t, p, c, map[string]string{}) // needs room: b goes
	s := p.Stats()
	if _, ok := s.ByKey[b.Key]; ok || s.ByKey[a.Key].Idle != 1 || s.ByKey[c.Key].Idle != 1 {
		t.Errorf("after eviction: %+v", s.ByKey)
	}
	if s.MemoryUsedMB != 512 {
		t.Errorf("memory used %d MB", s.MemoryUsedMB)
	}
}

func TestIdleTimeoutTearsDown(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { c.IdleTimeout = 100 * time.Millisecond })
	fn := goSpec("idle")
	res := invoke(t, p, fn, map[string]string{"op": "spawn"})
	procs := sandboxProcs(t, p, res.SandboxID)
	if len(procs) < 2 {
		t.Fatalf("expected the bootstrap and its child in the cgroup, got %v", procs)
	}
	waitFor(t, 10*time.Second, func() error {
		if s := p.Stats(); s.Idle != 0 || s.MemoryUsedMB != 0 {
			return fmt.Errorf("still %+v", s)
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error { return sandboxGone(p, res.SandboxID, procs) })
}

func TestPrewarm(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { c.IdleTimeout = 50 * time.Millisecond })
	fn := goSpec("warm")
	if err := p.Prewarm(t.Context(), fn, 2); err != nil {
		t.Fatal(err)
	}
	if ks := p.Stats().ByKey[fn.Key]; ks.Idle != 2 {
		t.Fatalf("after Prewarm(2): %+v", ks)
	}
	res := invoke(t, p, fn, map[string]string{"op": "env"})
	if res.ColdStart || !strings.Contains(string(res.Payload), "AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency") {
		t.Errorf("invocation after Prewarm: cold=%v", res.ColdStart)
	}
	// Prewarmed sandboxes outlive IdleTimeout; lifting the floor lets them go.
	passes := p.reapPasses.Load()
	waitFor(t, 10*time.Second, func() error {
		if p.reapPasses.Load() < passes+5 {
			return errors.New("the reaper has not run five more times")
		}
		return nil
	})
	if ks := p.Stats().ByKey[fn.Key]; ks.Idle != 2 {
		t.Fatalf("prewarmed sandboxes were reaped: %+v", ks)
	}
	if err := p.Prewarm(t.Context(), fn, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if ks, ok := p.Stats().ByKey[fn.Key]; ok {
			return fmt.Errorf("still %+v", ks)
		}
		return nil
	})
}

func TestCloseTearsEverythingDown(t *testing.T) {
	requireRoot(t)
	cfg := DefaultPoolConfig()
	cfg.StateDir, cfg.LogDir = filepath.Join(t.TempDir(), "s"), filepath.Join(t.TempDir(), "l")
	cfg.Code = DirSource{Dirs: map[string]string{"go": goFunction(t)}}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var procs [][]int
	for i := range 3 {
		res, err := p.Invoke(t.Context(), goSpec(fmt.Sprint("f", i)), Invocation{Payload: []byte(`{"op":"spawn"}`)})
		if err != nil || res.FunctionError != "" {
			t.Fatal(err, string(res.Payload))
		}
		ids = append(ids, res.SandboxID)
		procs = append(procs, sandboxProcs(t, p, res.SandboxID))
	}
	busy := startSlow(t, p, goSpec("busy"), 60000)
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res := <-busy; !strings.Contains(string(res.Payload), "Runtime.ExitError") {
		t.Errorf("busy invocation at Close: %s", res.Payload)
	}
	for i, id := range ids {
		if err := sandboxGone(p, id, procs[i]); err != nil {
			t.Error(err)
		}
	}
	assertNoCgroups(t, cfg.CgroupParent+"/"+p.name)
	if _, err := p.Invoke(t.Context(), goSpec("late"), Invocation{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: %v", err)
	}
}

func TestLeftoversOfACrashedRunAreCleaned(t *testing.T) {
	requireRoot(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := DefaultPoolConfig()
	cfg.StateDir, cfg.LogDir = stateDir, filepath.Join(t.TempDir(), "logs")
	cfg.Code = DirSource{}
	// What a crashed agent leaves: a sandbox cgroup with a live process.
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := cfg.CgroupParent + "/" + p.name + "/crashed"
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	for _, c := range []string{"memory", "cpu", "pids"} {
		dir := filepath.Join(cgroupRoot, c, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	p2, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close(context.Background())
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the leftover process survived the new pool's start")
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, c, sub)); err == nil {
			t.Errorf("leftover cgroup %s/%s not removed", c, sub)
		}
	}
}

func TestInvokeContextCancelKeepsSandbox(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("cancel")
	invoke(t, p, fn, map[string]string{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	invoked := make(chan error, 1)
	go func() {
		_, err := p.Invoke(ctx, fn, Invocation{Payload: []byte(`{"op":"sleep","n":300}`)})
		invoked <- err
	}()
	// waitFor may call t.Fatal, so it runs here, on the test goroutine.
	waitFor(t, 10*time.Second, func() error {
		if p.Stats().Busy != 1 {
			return errors.New("not busy")
		}
		return nil
	})
	cancel()
	if err := <-invoked; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Invoke: %v", err)
	}
	waitFor(t, 10*time.Second, func() error {
		if s := p.Stats(); s.Idle != 1 || s.Busy != 0 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	if res := invoke(t, p, fn, map[string]string{}); res.ColdStart {
		t.Error("the sandbox of the cancelled invocation was not kept")
	}
}

func TestInsecureMode(t *testing.T) {
	code := map[string]string{
		"go": goFunction(t),
		"py": codeDir(t, map[string]string{"app.py": pythonHandler}),
	}
	p := newTestPool(t, code, func(c *PoolConfig) { c.Isolation = IsolationNone })
	env := map[string]string{}
	for _, kv := range decode[[]string](t, invoke(t, p, goSpec("plain"), map[string]string{"op": "env"})) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if !strings.HasPrefix(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:") || env["AWS_LAMBDA_RUNTIME_API"] == RuntimeAPIAddr {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want a per-sandbox port", env["AWS_LAMBDA_RUNTIME_API"])
	}
	if env["LAMBDA_TASK_ROOT"] != code["go"] {
		t.Errorf("LAMBDA_TASK_ROOT = %q", env["LAMBDA_TASK_ROOT"])
	}
	py := interpretedSpec("py", "python3.11", "app.handler")
	if got := decode[map[string]any](t, invoke(t, p, py, map[string]string{})); got["count"] != 1.0 {
		t.Errorf("python without isolation: %v", got)
	}
	fn := goSpec("plain-timeout")
	fn.Timeout = time.Second
	res := invoke(t, p, fn, map[string]any{"op": "sleep", "n": 30000})
	if !strings.Contains(string(res.Payload), "Sandbox.Timedout") {
		t.Errorf("timeout without isolation: %s", res.Payload)
	}
	if s := p.Stats(); s.Isolation != IsolationNone || s.ReadyShells != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// TestInsecureModeIdleTimeout: keep-alive applies without isolation too.
func TestInsecureModeIdleTimeout(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) {
		c.Isolation = IsolationNone
		c.IdleTimeout = 100 * time.Millisecond
	})
	invoke(t, p, goSpec("plain-idle"), map[string]string{})
	waitFor(t, 10*time.Second, func() error {
		if s := p.Stats(); s.Idle != 0 || s.MemoryUsedMB != 0 {
			return fmt.Errorf("still %+v", s)
		}
		return nil
	})
}

// TestInsecureModeMissingBootstrap: without isolation too, a provided
// function without a bootstrap fails its Init with InvalidEntrypoint and
// leaves no sandbox behind.
func TestInsecureModeMissingBootstrap(t *testing.T) {
	p := newTestPool(t, map[string]string{"empty": codeDir(t, map[string]string{"README": "no bootstrap here"})},
		func(c *PoolConfig) { c.Isolation = IsolationNone })
	fn := goSpec("plain-empty")
	fn.CodeID = "empty"
	res := invoke(t, p, fn, map[string]string{})
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(res.Payload, &e)
	if res.FunctionError != "Unhandled" || e.ErrorType != "Runtime.InvalidEntrypoint" || !strings.Contains(e.ErrorMessage, "no bootstrap found") {
		t.Errorf("got %q %s", res.FunctionError, res.Payload)
	}
	if s := p.Stats(); s.Initializing+s.Idle+s.Busy != 0 || s.MemoryUsedMB != 0 {
		t.Errorf("a sandbox of the failed Init is still counted: %+v", s)
	}
}

// sandboxProcs lists the host pids in a sandbox's cgroup.
func sandboxProcs(t *testing.T, p *Pool, id string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "pids", p.cfg.CgroupParent, p.name, id, "cgroup.procs"))
	if err != nil {
		t.Fatalf("sandbox cgroup: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	return pids
}

// sandboxGone checks that a sandbox's processes and cgroups no longer exist.
func sandboxGone(p *Pool, id string, pids []int) error {
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && strings.Contains(string(b), id) {
			return fmt.Errorf("process %d of sandbox %s still alive", pid, id)
		}
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, c, p.cfg.CgroupParent, p.name, id)); err == nil {
			return fmt.Errorf("cgroup %s of sandbox %s still exists", c, id)
		}
	}
	return nil
}

// TestSupersededSandboxesRetireAtOnce: once an invocation carries a new Key
// for the same function version (its configuration or code changed), the
// old Key's idle sandbox is torn down at once and its busy one when its
// invocation ends, instead of idling for the keep-alive.
func TestSupersededSandboxesRetireAtOnce(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	old := goSpec("updated")
	slow := startSlow(t, p, old, 5000)                         // sandbox 1: busy
	idle := invoke(t, p, old, map[string]string{"op": "echo"}) // sandbox 2: idle
	idlePids := sandboxProcs(t, p, idle.SandboxID)

	updated := old
	updated.Key = "updated#2"
	updated.Environment = map[string]string{"REVISION": "2"}
	if got := decode[map[string]string](t, invoke(t, p, updated, map[string]string{"op": "echo", "value": "new"})); got["value"] != "new" {
		t.Fatalf("updated function: %v", got)
	}
	if n := p.Stats().ByKey[old.Key]; n.Idle != 0 {
		t.Errorf("after the update the old configuration still has %d idle sandboxes", n.Idle)
	}
	waitFor(t, 10*time.Second, func() error { return sandboxGone(p, idle.SandboxID, idlePids) })

	if res := <-slow; res.FunctionError != "" {
		t.Fatalf("the invocation running during the update: %s", res.Payload)
	}
	s := p.Stats()
	if n := s.ByKey[old.Key]; n.Idle+n.Busy+n.Initializing != 0 {
		t.Errorf("the old configuration's sandbox outlived its invocation: %+v", n)
	}
	if n := s.ByKey[updated.Key]; n.Idle != 1 || s.MemoryUsedMB != updated.MemoryMB {
		t.Errorf("after the update: %+v, memory used %d MB; want one idle sandbox of the new configuration and its %d MB only", n, s.MemoryUsedMB, updated.MemoryMB)
	}
}
