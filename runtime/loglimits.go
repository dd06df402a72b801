package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LogLimits bound the function output a node writes under LogDir, which
// shares its disk with the node's Raft state and async payload logs (issue
// 13: one function wrote 176 GB an hour there). Output bytes are the
// lines a function prints, newline included, timestamps not.
type LogLimits struct {
	// Window is the period FunctionBytes and AccountBytes count over:
	// fixed windows aligned to the Unix epoch (each minute by default).
	Window time.Duration
	// FunctionBytes bounds the output one function (all its versions and
	// sandboxes on this node) may write per Window. Lines past it are
	// dropped, and each of the function's log streams gets one marker
	// line per window saying so. 0: no bound.
	FunctionBytes int64
	// AccountBytes bounds the same for all of one account's functions on
	// this node together. 0: no bound.
	AccountBytes int64
	// MinFreeBytes stops writing function logs (output and platform lines)
	// while the file system holding LogDir has less space available; each
	// stream writes one marker line counting what it dropped once there is
	// room again. The node's own state is then what is left to use the
	// disk. 0: no guard.
	MinFreeBytes int64
	// Retention: the agent's sweep (LogGate.Sweep) deletes log stream
	// files last written longer ago. 0: never.
	Retention time.Duration
}

// DefaultLogLimits returns the agent's defaults: 32 MiB per function and
// 128 MiB per account per minute on each node (a function printing
// 200-byte lines at 2,500 a second stays under it; the 176 GB/h flood is
// cut ninety-fold), logs paused below 1 GiB free, seven days' retention.
func DefaultLogLimits() LogLimits {
	return LogLimits{
		Window:        time.Minute,
		FunctionBytes: 32 << 20,
		AccountBytes:  128 << 20,
		MinFreeBytes:  1 << 30,
		Retention:     7 * 24 * time.Hour,
	}
}

// Validate reports every limit that cannot work.
func (l LogLimits) Validate() error {
	var errs []error
	if l.Window <= 0 {
		errs = append(errs, fmt.Errorf("log limits: Window %v must be positive", l.Window))
	}
	for name, v := range map[string]int64{"FunctionBytes": l.FunctionBytes, "AccountBytes": l.AccountBytes, "MinFreeBytes": l.MinFreeBytes} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("log limits: %s %d must not be negative (0: no bound)", name, v))
		}
	}
	if l.Retention < 0 {
		errs = append(errs, fmt.Errorf("log limits: Retention %v must not be negative (0: keep logs forever)", l.Retention))
	}
	return errors.Join(errs...)
}

// diskCheckEvery bounds how often the gate asks the file system for its
// free space: statfs is cheap, but not cheap enough for every write.
const diskCheckEvery = time.Second

// LogGate applies LogLimits to every log stream of a pool (PoolConfig.
// LogGate): it is shared by all the pool's sandboxes and safe for
// concurrent use. Nothing in it blocks on I/O but one statfs a second:
// a function is never slowed by its log being refused.
type LogGate struct {
	dir    string
	limits LogLimits
	// now and avail are replaced by tests: the clock that picks windows,
	// and the bytes available on dir's file system.
	now   func() time.Time
	avail func(dir string) (int64, error)

	mu        sync.Mutex
	window    int64            // index of the current window
	byFunc    map[string]int64 // bytes admitted this window, by "account/function"
	byAccount map[string]int64 // bytes admitted this window, by account
	diskAt    time.Time        // when avail was last asked
	diskLow   bool
}

// NewLogGate returns the gate for the log streams under dir.
func NewLogGate(dir string, limits LogLimits) (*LogGate, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("log limits: the log directory is required")
	}
	return &LogGate{dir: dir, limits: limits, now: time.Now, avail: availableBytes, window: -1}, nil
}

// Limits returns the gate's limits.
func (g *LogGate) Limits() LogLimits { return g.limits }

func availableBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// logDrop says why the gate refused a line.
type logDrop int

const (
	dropNone     logDrop = iota
	dropFunction         // the function's bytes per window
	dropAccount          // the account's bytes per window
)

// admit charges n bytes of a function's output to the current window. It
// returns dropNone if they may be written, otherwise the limit they would
// pass (and charges nothing); window identifies the current window, so a
// stream writes one marker per window.
func (g *LogGate) admit(account, function string, n int) (drop logDrop, window int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.now().UnixNano() / int64(g.limits.Window)
	if w != g.window {
		// Fresh maps, not cleared ones: they hold only the functions that
		// logged in the window.
		g.window, g.byFunc, g.byAccount = w, map[string]int64{}, map[string]int64{}
	}
	key := account + "/" + function
	switch {
	case g.limits.FunctionBytes > 0 && g.byFunc[key]+int64(n) > g.limits.FunctionBytes:
		return dropFunction, w
	case g.limits.AccountBytes > 0 && g.byAccount[account]+int64(n) > g.limits.AccountBytes:
		return dropAccount, w
	}
	g.byFunc[key] += int64(n)
	g.byAccount[account] += int64(n)
	return dropNone, w
}

// diskFull reports whether the log disk has less than MinFreeBytes
// available, asking the file system at most once per diskCheckEvery. If
// it cannot be asked, logs are written (a failing write is ignored too).
func (g *LogGate) diskFull() bool {
	if g.limits.MinFreeBytes <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if since := now.Sub(g.diskAt); !g.diskAt.IsZero() && since >= 0 && since < diskCheckEvery {
		return g.diskLow
	}
	g.diskAt = now
	free, err := g.avail(g.dir)
	g.diskLow = err == nil && free < g.limits.MinFreeBytes
	return g.diskLow
}

// marker is the line a stream writes when the gate first drops its output
// in a window.
func (g *LogGate) marker(d logDrop) string {
	who := "this function's"
	if d == dropAccount {
		who = "this account's"
	}
	return fmt.Sprintf("[stoke] %s log output on this node passed its limit of %d bytes per %v; further lines are dropped until the next window",
		who, map[logDrop]int64{dropFunction: g.limits.FunctionBytes, dropAccount: g.limits.AccountBytes}[d], g.limits.Window)
}

// diskMarker is the line a stream writes once the disk has room again.
func (g *LogGate) diskMarker(dropped int64) string {
	return fmt.Sprintf("[stoke] %d bytes of log records were dropped while the node's log disk had less than %d bytes free", dropped, g.limits.MinFreeBytes)
}

// Sweep deletes the log stream files under the gate's directory last
// written before now minus Retention, then the directories left empty
// (never the directory itself). It returns how many files it deleted. A
// stream whose directory it removes is reopened by openLogStream, which
// creates the directory again. Sweep with Retention 0 deletes nothing.
func (g *LogGate) Sweep(now time.Time) (int, error) {
	if g.limits.Retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-g.limits.Retention)
	var dirs []string
	var errs []error
	removed := 0
	err := filepath.WalkDir(g.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		if d.IsDir() {
			if path != g.dir {
				dirs = append(dirs, path)
			}
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	// Deepest first, so that a day's removal can empty its month.
	for _, d := range slices.Backward(dirs) {
		_ = unix.Rmdir(d) // fails, as it should, on a directory still in use
	}
	return removed, errors.Join(errs...)
}
