package runtime

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSandboxProcStatus(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	status := decode[string](t, invoke(t, p, goSpec("status"), map[string]string{"op": "read", "value": "/proc/self/status"}))
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.TrimSpace(v)
	}
	for k, want := range map[string]string{
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	} {
		if fields[k] != want {
			t.Errorf("%s = %q, want %q", k, fields[k], want)
		}
	}
	if uid := strings.Fields(fields["Uid"]); len(uid) == 0 || uid[0] != "993" {
		t.Errorf("Uid = %q, want 993", fields["Uid"])
	}
	if fields["Seccomp_filters"] != "2" {
		t.Errorf("Seccomp_filters = %q, want 2 (guard filter + deny-list)", fields["Seccomp_filters"])
	}
	limits := decode[string](t, invoke(t, p, goSpec("status"), map[string]string{"op": "read", "value": "/proc/self/limits"}))
	for _, want := range []string{"Max open files            1024                 1024", "Max core file size        0                    0"} {
		if !strings.Contains(limits, want) {
			t.Errorf("limits lack %q:\n%s", want, limits)
		}
	}
}

func TestSandboxRefusedSyscalls(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	got := decode[map[string]string](t, invoke(t, p, goSpec("sys"), map[string]string{"op": "syscalls"}))
	for name, errno := range got {
		want := "EPERM"
		if name == "clone3" {
			want = "ENOSYS" // so that libc falls back to the filterable clone
		}
		if errno != want {
			t.Errorf("%s returned %s, want %s", name, errno, want)
		}
	}
	if len(got) < 26 {
		t.Errorf("only %d syscalls probed", len(got))
	}
}

func TestSandboxFileSystemView(t *testing.T) {
	var stateDir string
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { stateDir = c.StateDir })
	fn := goSpec("fsview")
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("node secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/root", "/root/.bashrc", secret, stateDir, "/work", "/sys/fs/cgroup", "/etc/shadow", "/home/sbx_user1051/../../root"} {
		out := decode[string](t, invoke(t, p, fn, map[string]string{"op": "read", "value": path}))
		if !strings.HasPrefix(out, "error: ") {
			t.Errorf("read %s succeeded: %.80q", path, out)
		}
	}
	root := decode[[]string](t, invoke(t, p, fn, map[string]string{"op": "readdir", "value": "/"}))
	for _, name := range root {
		switch name {
		case "root", "work", "sys", "home", "etc", "usr", "bin", "sbin", "lib", "lib64", "var", "opt", "tmp", "proc", "dev", "lib32", "libx32":
		default:
			t.Errorf("unexpected /%s in the sandbox", name)
		}
		if name == "root" || name == "work" || name == "sys" {
			t.Errorf("/%s visible in the sandbox", name)
		}
	}
	// Code and system directories are read-only; /tmp is writable.
	for _, dir := range []string{"/var/task", "/usr", "/etc", "/", "/opt"} {
		out := decode[string](t, invoke(t, p, fn, map[string]any{"op": "exec", "args": []string{"/usr/bin/touch", dir + "/x"}}))
		if !strings.Contains(out, "Read-only file system") && !strings.Contains(out, "Permission denied") {
			t.Errorf("touch %s/x: %q", dir, out)
		}
	}
	if out := decode[string](t, invoke(t, p, fn, map[string]any{"op": "exec", "args": []string{"/usr/bin/touch", "/tmp/x"}})); out != "" {
		t.Errorf("touch /tmp/x: %q", out)
	}
	passwd := decode[string](t, invoke(t, p, fn, map[string]string{"op": "read", "value": "/etc/passwd"}))
	if strings.Count(passwd, "\n") != 2 || !strings.Contains(passwd, "sbx_user1051:x:993:990") {
		t.Errorf("/etc/passwd = %q", passwd)
	}
}

func TestSandboxCannotSeeOthers(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	a, b := goSpec("a"), goSpec("b")
	b.Environment = map[string]string{"B_SECRET": "only-for-b"}
	bRes := invoke(t, p, b, map[string]string{"op": "spawn"}) // b now has a background process
	if bRes.FunctionError != "" {
		t.Fatalf("spawn: %s", bRes.Payload)
	}
	pids := decode[[]string](t, invoke(t, p, a, map[string]string{"op": "readdir", "value": "/proc"}))
	var procs []string
	for _, n := range pids {
		if n[0] >= '0' && n[0] <= '9' {
			procs = append(procs, n)
		}
	}
	if len(procs) != 1 || procs[0] != "1" {
		t.Errorf("a sees processes %v; want only its own pid 1", procs)
	}
	for _, pid := range []string{"1", "2", "3"} {
		env := decode[string](t, invoke(t, p, a, map[string]string{"op": "read", "value": "/proc/" + pid + "/environ"}))
		if strings.Contains(env, "only-for-b") {
			t.Errorf("a read b's environment through /proc/%s", pid)
		}
	}
	// Hostnames are the sandbox's own, not the node's.
	host, _ := os.Hostname()
	if got := decode[string](t, invoke(t, p, a, map[string]string{"op": "read", "value": "/proc/sys/kernel/hostname"})); strings.TrimSpace(got) == host {
		t.Errorf("sandbox sees the node's hostname %q", host)
	}
}

func TestSandboxNetwork(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fn := goSpec("net")
	for _, addr := range []string{ln.Addr().String(), "127.0.0.1:9000", "10.0.0.1:80", "[::1]:9001"} {
		out := decode[string](t, invoke(t, p, fn, map[string]string{"op": "connect", "value": addr}))
		if !strings.HasPrefix(out, "error: ") {
			t.Errorf("connect %s from the sandbox: %q", addr, out)
		}
	}
	if out := decode[string](t, invoke(t, p, fn, map[string]string{"op": "connect", "value": RuntimeAPIAddr})); out != "connected" {
		t.Errorf("connect to its own Runtime API: %q", out)
	}
}

func TestSandboxResourceLimits(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("limits")
	fn.MemoryMB = 1024 // /tmp (512 MB, in memory) fills before memory does
	fn.Timeout = 60 * time.Second

	if out := decode[string](t, invoke(t, p, fn, map[string]any{"op": "filltmp", "n": 600})); !strings.Contains(out, "no space left on device") {
		t.Errorf("filling /tmp: %q", out)
	}
	if out := decode[string](t, invoke(t, p, fn, map[string]any{"op": "openfiles", "n": 10000})); !strings.Contains(out, "too many open files") {
		t.Errorf("opening 10000 files: %q", out)
	}
	fork := decode[map[string]any](t, invoke(t, p, fn, map[string]any{"op": "forkbomb", "n": 3000}))
	if started := fork["started"].(float64); started >= PidsLimit || !strings.Contains(fork["err"].(string), "resource temporarily unavailable") {
		t.Errorf("fork bomb: %v", fork)
	}
	// The sandbox survives all of that.
	if got := decode[map[string]string](t, invoke(t, p, fn, map[string]string{"op": "echo", "value": "alive"})); got["value"] != "alive" {
		t.Errorf("after limits: %v", got)
	}
}

func TestSandboxMemoryLimit(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("hog")
	fn.MemoryMB = 128
	res := invoke(t, p, fn, map[string]any{"op": "alloc", "n": 400})
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(res.Payload, &e)
	if e.ErrorType != "Runtime.ExitError" || !strings.HasSuffix(e.ErrorMessage, "Runtime exited with error: signal: killed") {
		t.Fatalf("allocating past the limit: %s", res.Payload)
	}
	if res.MaxMemoryUsedMB < 100 || res.MaxMemoryUsedMB > 129 {
		t.Errorf("Max Memory Used %d MB, want close to 128", res.MaxMemoryUsedMB)
	}
	// The node is healthy: a new sandbox of the same function works.
	if got := decode[map[string]string](t, invoke(t, p, fn, map[string]string{"op": "echo", "value": "ok"})); got["value"] != "ok" {
		t.Errorf("after OOM: %v", got)
	}
}

func TestLayersMergeAtOpt(t *testing.T) {
	code := map[string]string{
		"go": goFunction(t),
		"l1": codeDir(t, map[string]string{"a.txt": "one", "shared.txt": "from layer 1"}),
		"l2": codeDir(t, map[string]string{"b.txt": "two", "shared.txt": "from layer 2"}),
	}
	p := newTestPool(t, code)
	one := goSpec("one-layer")
	one.LayerIDs = []string{"l1"}
	if got := decode[string](t, invoke(t, p, one, map[string]string{"op": "read", "value": "/opt/a.txt"})); got != "one" {
		t.Errorf("one layer: /opt/a.txt = %q", got)
	}
	two := goSpec("two-layers")
	two.LayerIDs = []string{"l1", "l2"}
	for path, want := range map[string]string{"/opt/a.txt": "one", "/opt/b.txt": "two", "/opt/shared.txt": "from layer 2"} {
		if got := decode[string](t, invoke(t, p, two, map[string]string{"op": "read", "value": path})); got != want {
			t.Errorf("two layers: %s = %q, want %q", path, got, want)
		}
	}
	if got := decode[[]string](t, invoke(t, p, two, map[string]string{"op": "readdir", "value": "/tmp"})); len(got) != 0 {
		t.Errorf("/tmp is not empty: %v", got)
	}
}
