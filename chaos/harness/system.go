package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrUnsupported is returned by operations this cluster's network or
// privileges cannot perform (a partition on loopback, a mount without root).
var ErrUnsupported = errors.New("unsupported by this harness setup")

// IsRoot reports whether the process runs as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// CanNamespace reports whether per-node network namespaces can be made, and
// if not, why.
func CanNamespace() (bool, string) {
	if !IsRoot() {
		return false, "not root"
	}
	for _, tool := range []string{"ip", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, tool + " not installed"
		}
	}
	return true, ""
}

// RequireNamespaces skips the test unless namespaces (and so partitions,
// packet loss and latency) are available.
func RequireNamespaces(t interface{ Skipf(string, ...any) }) {
	if ok, why := CanNamespace(); !ok {
		t.Skipf("needs per-node network namespaces for iptables and tc faults: %s (run as root with iproute2, util-linux and iptables)", why)
	}
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t interface{ Skipf(string, ...any) }) {
	if !IsRoot() {
		t.Skipf("needs root for mounts, iptables and tc")
	}
}

// run executes a system tool and returns its output; a failure's error
// carries the command line and what it printed.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// pidAlive reports whether a process with this pid exists (it may be
// another process that reused the pid; callers then leave things alone).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockFile takes an exclusive flock on path (created if missing) and
// returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
