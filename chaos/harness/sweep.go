package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var sweepOnceGuard sync.Once

func sweepOnce(t testing.TB) {
	sweepOnceGuard.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		removed, err := Sweep(ctx)
		for _, r := range removed {
			t.Logf("harness: removed a leftover of a dead run: %s", r)
		}
		if err != nil {
			t.Logf("harness: sweeping leftovers of dead runs: %v", err)
		}
	})
}

var (
	// Names embedding the pid of the run that made them.
	runDirPID = regexp.MustCompile(`/stoke-chaos-(?:bin-)?(\d+)-`)
	netnsPID  = regexp.MustCompile(`^` + netnsPrefix + `(\d+)-\d+-n\d+$`)
	chainPID  = regexp.MustCompile(`^-N (` + chainPrefix + `(\d+)-\d+)$`)
	linkPID   = regexp.MustCompile(`^\d+: ((?:` + bridgePrefix + `|` + vethPrefix + `)([0-9a-z]+)-[0-9a-z]+(?:-[0-9a-z]+)?)[@:]`)
)

// Sweep removes what runs that died without cleaning up left behind, and
// only that: agents whose data dir is in a stoke-chaos-PID- directory,
// namespaces, links and iptables chains named after a pid, and tmpfs
// mounts in such directories, in each case only when that pid is dead.
// Run directories themselves stay (they hold the logs of failed runs);
// built binaries are removed. It reports what it removed.
func Sweep(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []string
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", what, err))
			return
		}
		removed = append(removed, what)
	}
	deadIn := func(s string, re *regexp.Regexp, group int) (int, bool) {
		m := re.FindStringSubmatch(s)
		if m == nil {
			return 0, false
		}
		pid, err := strconv.Atoi(m[group])
		return pid, err == nil && pid != os.Getpid() && !pidAlive(pid)
	}

	// Agents of dead runs (normally gone already: parent-death signal).
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "stoke-chaos-") {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == "--data-dir" && i+1 < len(args) {
				if _, dead := deadIn(args[i+1], runDirPID, 1); dead {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
					note(fmt.Sprintf("agent pid %d (data dir %s)", pid, args[i+1]), syscall.Kill(pid, syscall.SIGKILL))
				}
			}
		}
	}

	// Mounts over data dirs of dead runs.
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		var points []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// Namespace files under /run/netns are bind mounts too; the
			// namespace sweep below deletes those.
			if len(fields) > 4 && !strings.HasPrefix(fields[4], "/run/netns/") {
				if _, dead := deadIn(fields[4], runDirPID, 1); dead {
					points = append(points, fields[4])
				}
			}
		}
		f.Close()
		for i := len(points) - 1; i >= 0; i-- {
			note("mount "+points[i], syscall.Unmount(points[i], syscall.MNT_DETACH))
		}
	}

	if IsRoot() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if _, dead := deadIn(e.Name(), netnsPID, 1); dead {
				_, err := run(ctx, "ip", "netns", "del", e.Name())
				note("netns "+e.Name(), err)
			}
		}
		if out, err := run(ctx, "ip", "-o", "link", "show"); err == nil {
			for _, line := range strings.Split(out, "\n") {
				m := linkPID.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				pid, err := strconv.ParseInt(m[2], 36, 64)
				if err != nil || int(pid) == os.Getpid() || pidAlive(int(pid)) {
					continue
				}
				_, err = run(ctx, "ip", "link", "del", m[1])
				note("link "+m[1], err)
			}
		}
		if out, err := run(ctx, "iptables", "-w", "-S"); err == nil {
			for _, line := range strings.Split(out, "\n") {
				if _, dead := deadIn(line, chainPID, 2); dead {
					name := strings.TrimPrefix(line, "-N ")
					note("iptables chain "+name, removeChain(ctx, name))
				}
			}
		}
	}

	// Binaries built by dead runs.
	bins, _ := filepath.Glob(filepath.Join(os.TempDir(), "stoke-chaos-bin-*"))
	for _, b := range bins {
		if _, dead := deadIn(b, runDirPID, 1); dead {
			note("binary dir "+b, os.RemoveAll(b))
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return removed, nil
}
