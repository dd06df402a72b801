package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// live holds the clusters not yet closed, for the signal handler.
var (
	liveMu sync.Mutex
	live   = map[*Cluster]bool{}
)

func register(c *Cluster) {
	liveMu.Lock()
	live[c] = true
	liveMu.Unlock()
}

func unregister(c *Cluster) {
	liveMu.Lock()
	delete(live, c)
	liveMu.Unlock()
}

var signalOnce sync.Once

// installSignalHandler makes SIGINT and SIGTERM close every live cluster
// before the process exits, so an interrupted run leaves nothing behind.
func installSignalHandler() {
	signalOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go awaitSignal(ch)
	})
}

func awaitSignal(ch <-chan os.Signal) {
	sig := <-ch
	fmt.Fprintf(os.Stderr, "harness: %v: removing every cluster before exiting\n", sig)
	liveMu.Lock()
	cs := make([]*Cluster, 0, len(live))
	for c := range live {
		cs = append(cs, c)
	}
	liveMu.Unlock()
	for _, c := range cs {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		}
	}
	removeBinary()
	os.Exit(2)
}

// RunMain runs a test binary's tests with the harness's housekeeping: it
// installs the signal handler, removes the built stoke binary at the end
// and, when the tests passed, fails the binary if they left goroutines
// behind (goleak). Leftovers of dead runs are swept when the first
// cluster starts. Use it from TestMain: os.Exit(harness.RunMain(m)).
func RunMain(m *testing.M) int {
	installSignalHandler()
	code := m.Run()
	removeBinary()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("os/signal.signal_recv"),
			goleak.IgnoreTopFunction("github.com/stokehq/stoke/chaos/harness.awaitSignal")); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			return 1
		}
	}
	return code
}

var (
	binOnce sync.Once
	binPath string
	binDir  string
	binErr  error
)

// Binary returns the stoke binary chaos clusters run: $STOKE_CHAOS_BINARY
// when set, otherwise one built from this module once per test process
// (with the race detector when STOKE_CHAOS_RACE=1).
func Binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("STOKE_CHAOS_BINARY"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			binErr = fmt.Errorf("harness: cannot find the module to build stoke from (go env GOMOD: %v)", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if binDir, binErr = os.MkdirTemp("", fmt.Sprintf("stoke-chaos-bin-%d-", os.Getpid())); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "stoke")
		args := []string{"build", "-o", binPath}
		if os.Getenv("STOKE_CHAOS_RACE") == "1" {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/stoke")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("harness: go build ./cmd/stoke: %w\n%s", err, out)
		}
	})
	return binPath, binErr
}

func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}
