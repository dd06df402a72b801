package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

var (
	goFnOnce sync.Once
	goFnDir  string
	goFnErr  error
)

// goFunction builds testdata/gofn once per test binary into a code tree
// holding a static "bootstrap" (deployed as provided.al2023).
func goFunction(t testing.TB) string {
	t.Helper()
	goFnOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stoke-gofn-")
		if err != nil {
			goFnErr = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "bootstrap"), "./testdata/gofn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			goFnErr = fmt.Errorf("build gofn: %v\n%s", err, out)
			return
		}
		goFnErr = os.Chmod(dir, 0o755)
		goFnDir = dir
	})
	if goFnErr != nil {
		t.Fatal(goFnErr)
	}
	return goFnDir
}

// codeDir writes files into a fresh world-readable code tree.
func codeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox tests need root (namespaces, cgroups); run go test as root")
	}
}

type poolOpt func(*PoolConfig)

// newTestPool starts a fully isolated pool with test-friendly settings and
// closes it (checking that nothing is left) when the test ends.
func newTestPool(t testing.TB, code map[string]string, opts ...poolOpt) *Pool {
	t.Helper()
	requireRoot(t)
	cfg := DefaultPoolConfig()
	base := t.TempDir()
	cfg.StateDir = filepath.Join(base, "state")
	cfg.LogDir = filepath.Join(base, "logs")
	cfg.MemoryBudgetMB = 8192
	cfg.ShellPoolSize = 1
	cfg.Code = DirSource{Dirs: code}
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, o := range opts {
		o(&cfg)
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if cfg.Isolation == IsolationFull {
			assertNoCgroups(t, cfg.CgroupParent+"/"+p.name)
		}
	})
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// assertNoCgroups checks the pool's cgroup subtree is gone.
func assertNoCgroups(t testing.TB, sub string) {
	t.Helper()
	for _, c := range []string{"memory", "cpu", "pids", "freezer"} {
		p := filepath.Join(cgroupRoot, c, sub)
		if _, err := os.Stat(p); err == nil {
			ents, _ := os.ReadDir(p)
			t.Errorf("cgroup %s still exists after Close (%d entries)", p, len(ents))
		}
	}
}

func goSpec(name string) FunctionSpec {
	return FunctionSpec{
		Key: name + "#1", FunctionName: name, Version: "$LATEST", AccountID: "123456789012", Region: "us-east-1",
		Runtime: "provided.al2023", Handler: "bootstrap", MemoryMB: 256, Timeout: 10 * time.Second, CodeID: "go",
	}
}

func invoke(t testing.TB, p *Pool, fn FunctionSpec, payload any) Result {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := p.Invoke(ctx, fn, Invocation{Payload: b})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return res
}

func decode[T any](t testing.TB, res Result) T {
	t.Helper()
	var v T
	if res.FunctionError != "" {
		t.Fatalf("function error: %s\nlog tail:\n%s", res.Payload, res.LogTail)
	}
	if err := json.Unmarshal(res.Payload, &v); err != nil {
		t.Fatalf("decode %q: %v", res.Payload, err)
	}
	return v
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
