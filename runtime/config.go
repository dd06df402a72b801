package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"
)

// Isolation says how strongly sandboxes are separated from the node.
type Isolation int

const (
	// IsolationFull runs every sandbox in its own namespaces, cgroup, private
	// root, dropped privileges and seccomp filter. It needs root and cgroups.
	IsolationFull Isolation = iota
	// IsolationNone runs function code as plain child processes of the agent
	// (the agent's --insecure-no-sandbox mode). Function code can read
	// everything the agent can; use it only for local development on machines
	// where sandboxing is impossible.
	IsolationNone
)

func (i Isolation) String() string {
	switch i {
	case IsolationFull:
		return "full"
	case IsolationNone:
		return "none"
	}
	return fmt.Sprintf("Isolation(%d)", int(i))
}

// CPUMode says how a sandbox's CPU share is enforced. Either way the share is
// proportional to memory, 1769 MB being one vCPU as on Lambda.
type CPUMode int

const (
	// CPUWeight gives each sandbox a cgroup weight (v1 cpu.shares, v2
	// cpu.weight) proportional to its memory. It is work-conserving: an idle
	// node lets any sandbox use spare CPU, and under contention CPU divides in
	// proportion to memory. This is the default; see docs/runtime.md.
	CPUWeight CPUMode = iota
	// CPUQuota caps each sandbox at memory/1769 vCPUs with the CFS bandwidth
	// controller, reproducing Lambda's performance for a given memory size
	// even on an idle node, at the price of throttling latency.
	CPUQuota
)

func (m CPUMode) String() string {
	switch m {
	case CPUWeight:
		return "weight"
	case CPUQuota:
		return "quota"
	}
	return fmt.Sprintf("CPUMode(%d)", int(m))
}

// ParseCPUMode parses "weight" or "quota" (the values of the node flag).
func ParseCPUMode(s string) (CPUMode, error) {
	switch s {
	case "weight", "shares":
		return CPUWeight, nil
	case "quota":
		return CPUQuota, nil
	}
	return 0, fmt.Errorf("runtime: unknown CPU mode %q (want weight or quota)", s)
}

// PoolConfig configures a Pool. Start from DefaultPoolConfig and override.
type PoolConfig struct {
	// MemoryBudgetMB bounds the sum of MemoryMB over all live sandboxes
	// (initializing, idle and busy). A cold start that does not fit evicts
	// idle sandboxes, least recently used first; if that is not enough the
	// invocation queues (or fails with ErrSaturated when NoQueue is set).
	MemoryBudgetMB int

	// IdleTimeout is the keep-alive: an idle sandbox unused for this long is
	// torn down. Sandboxes kept by Prewarm are exempt.
	IdleTimeout time.Duration

	// KeepIdleRunning leaves idle sandboxes running. By default (false) a
	// sandbox's cgroup is frozen when it goes idle and thawed when the next
	// invocation takes it, as on Lambda: a function's background threads
	// get no CPU between invocations. Freezing needs the cgroup v1 freezer
	// hierarchy or cgroup v2 on Linux 5.2+; without either, idle sandboxes
	// keep running and the pool says so at start. It exists for
	// comparison (BenchmarkWarmInvokeFrozen) and for hosts where freezing
	// misbehaves.
	KeepIdleRunning bool

	// MaxQueue bounds the invocations waiting for a sandbox or memory when
	// the node is full; one more fails at once with ErrQueueFull.
	MaxQueue int
	// QueueTimeout bounds how long one invocation waits in that queue before
	// failing with ErrQueueTimeout.
	QueueTimeout time.Duration

	// MaxConcurrentInits bounds the cold starts in their Init phase at
	// once. Inits compete for CPU: unbounded, a burst slows every one of
	// them until Init timeouts report the platform's overload as the
	// function's failure. A cold start past the bound waits for a slot
	// up to InitSlotWait once its code is ready (its Init timer starts
	// with the slot), else fails with ErrColdStartsBusy, a throttle. 0
	// means DefaultMaxConcurrentInits().
	MaxConcurrentInits int
	// InitSlotWait bounds that wait. 0 means InitTimeout: a cold start
	// waits no longer for a slot than its Init could have taken when all
	// of them ran at once, so nothing that used to finish its Init in
	// time is refused, and the Init itself never counts the wait.
	InitSlotWait time.Duration

	// CPUMode chooses a soft weight (default) or a hard quota for CPU.
	CPUMode CPUMode
	// CPUFloorMB is the floor of a sandbox's CPU weight in CPUWeight mode,
	// in memory terms: a sandbox weighs as much as a function of
	// max(MemoryMB, CPUFloorMB). Without a floor a 128 MB function weighs
	// 1/14 of a 1769 MB one and waits behind busy large neighbours (its
	// warm p99 went from milliseconds to over a second in
	// BenchmarkNoisyNeighbour). 0: no floor; the default, 512, keeps CPU
	// proportional to memory above 512 MB, as on Lambda.
	CPUFloorMB int

	// StateDir is the node-local scratch directory of this pool (sandbox
	// mount points, unpacked runtime bootstraps). It is created if missing
	// and must not be shared by two live pools: a starting pool removes
	// leftovers of a previous run of the pool that used the same StateDir.
	StateDir string
	// LogDir is where function log streams are written, one file per
	// sandbox: LogDir/<account>/<function>/<yyyy>/<mm>/<dd>/[<version>]<sandbox id>.
	LogDir string

	// Isolation is IsolationFull unless the node runs --insecure-no-sandbox.
	Isolation Isolation

	// CgroupParent is the cgroup (absolute, inside every hierarchy) under
	// which the pool creates its own subtree, named after StateDir. On
	// systemd hosts point it at a delegated slice.
	CgroupParent string

	// HostIDBase is the first host uid/gid of the range sandboxes run as.
	// With a user namespace, sandbox ids 0..999 map to HostIDBase+0..999,
	// and each sandbox's namespace is owned by one of the uids
	// HostIDBase+1000..HostIDBase+1000+65535 (so the kernel's per-user
	// limits, inotify instances among them, count per sandbox rather than
	// against host root); without one, function code runs directly as host
	// uid HostIDBase+993. The range must belong to no real user of the host.
	HostIDBase uint32

	// ShellPoolSize is how many empty sandbox shells (namespaces, cgroup and
	// Runtime API listener made, waiting for code) are kept ready in the
	// background so that a cold start only mounts code and execs. 0 creates
	// every shell on the cold-start path.
	ShellPoolSize int

	// InitTimeout bounds a sandbox's Init phase (start of the bootstrap to
	// its first /next); Lambda's is 10 s.
	InitTimeout time.Duration

	// LogCapBytes caps the function output recorded for one invocation
	// (init output included); the rest is counted and dropped.
	LogCapBytes int

	// LogGate bounds what all the pool's sandboxes write under LogDir:
	// bytes per function and per account per window, and a free-space
	// floor (NewLogGate over LogDir). nil: only LogCapBytes bounds output,
	// for tests and `stoke local`; an agent always sets one.
	LogGate *LogGate

	// Code hands the pool unpacked, read-only code trees for FunctionSpec.CodeID
	// and for each of FunctionSpec.LayerIDs.
	Code CodeSource

	// Logger receives the pool's own events; nil discards them.
	Logger *slog.Logger
}

// DefaultPoolConfig returns a configuration for one node: three quarters of
// the machine's memory as budget, 5 minutes keep-alive, weight CPU mode, full
// isolation. Code must still be set.
func DefaultPoolConfig() PoolConfig {
	budget := 2048
	if total := memTotalMB(); total > 0 {
		budget = total * 3 / 4
	}
	return PoolConfig{
		MemoryBudgetMB: budget,
		IdleTimeout:    5 * time.Minute,
		MaxQueue:       128,
		QueueTimeout:   5 * time.Second,
		CPUMode:        CPUWeight,
		CPUFloorMB:     512,
		StateDir:       "/var/lib/stoke/runtime",
		LogDir:         "/var/lib/stoke/logs",
		Isolation:      IsolationFull,
		CgroupParent:   "/stoke",
		HostIDBase:     1 << 30,
		ShellPoolSize:  2,
		InitTimeout:    10 * time.Second,
		LogCapBytes:    1 << 20,
	}
}

// Validate reports everything wrong with the configuration, one line per
// problem, wrapped in ErrInvalidConfig.
func (c PoolConfig) Validate() error {
	var errs []error
	if c.MemoryBudgetMB < 128 {
		errs = append(errs, fmt.Errorf("MemoryBudgetMB is %d; it must be at least 128 (one smallest function)", c.MemoryBudgetMB))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IdleTimeout is %v; it must be positive", c.IdleTimeout))
	}
	if c.MaxQueue < 0 {
		errs = append(errs, fmt.Errorf("MaxQueue is %d; it must not be negative", c.MaxQueue))
	}
	if c.MaxQueue > 0 && c.QueueTimeout <= 0 {
		errs = append(errs, fmt.Errorf("QueueTimeout is %v; it must be positive when MaxQueue > 0", c.QueueTimeout))
	}
	if c.CPUFloorMB < 0 || c.CPUFloorMB > 10240 {
		errs = append(errs, fmt.Errorf("CPUFloorMB is %d; it must be between 0 and 10240", c.CPUFloorMB))
	}
	if c.InitSlotWait < 0 {
		errs = append(errs, fmt.Errorf("InitSlotWait is %v; it must not be negative", c.InitSlotWait))
	}
	if c.MaxConcurrentInits < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrentInits is %d; it must not be negative", c.MaxConcurrentInits))
	}
	if c.CPUMode != CPUWeight && c.CPUMode != CPUQuota {
		errs = append(errs, fmt.Errorf("CPUMode %v is unknown", c.CPUMode))
	}
	if c.Isolation != IsolationFull && c.Isolation != IsolationNone {
		errs = append(errs, fmt.Errorf("Isolation %v is unknown", c.Isolation))
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("StateDir %q must be an absolute path", c.StateDir))
	}
	if c.LogDir == "" || !filepath.IsAbs(c.LogDir) {
		errs = append(errs, fmt.Errorf("LogDir %q must be an absolute path", c.LogDir))
	}
	if c.Isolation == IsolationFull {
		if !strings.HasPrefix(c.CgroupParent, "/") || strings.Contains(c.CgroupParent, "..") {
			errs = append(errs, fmt.Errorf("CgroupParent %q must be an absolute cgroup path without '..'", c.CgroupParent))
		}
		if c.HostIDBase == 0 || uint64(c.HostIDBase)+namespaceOwnerOffset+namespaceOwners > 1<<32-2 {
			errs = append(errs, fmt.Errorf("HostIDBase %d must leave room for %d ids and not be 0 (root)", c.HostIDBase, namespaceOwnerOffset+namespaceOwners))
		}
	}
	if c.ShellPoolSize < 0 || c.ShellPoolSize > 64 {
		errs = append(errs, fmt.Errorf("ShellPoolSize %d must be between 0 and 64", c.ShellPoolSize))
	}
	if c.InitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("InitTimeout is %v; it must be positive", c.InitTimeout))
	}
	if c.LogCapBytes < 4096 {
		errs = append(errs, fmt.Errorf("LogCapBytes is %d; it must be at least 4096", c.LogCapBytes))
	}
	if c.Code == nil {
		errs = append(errs, errors.New("the Code field (a CodeSource) must be set"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// DefaultMaxConcurrentInits is eight cold starts per CPU, at least eight.
// An interpreter's Init is mostly CPU (≈30–100 ms of it), so past a few
// per CPU more at once only makes each slower without finishing a burst
// sooner; the margin above that keeps Inits that wait on I/O (code
// fetched from a peer, a large package unpacked) from holding up others.
func DefaultMaxConcurrentInits() int {
	return max(8, 8*goruntime.NumCPU())
}

func (c PoolConfig) initSlotWait() time.Duration {
	if c.InitSlotWait > 0 {
		return c.InitSlotWait
	}
	return c.InitTimeout
}

func (c PoolConfig) maxConcurrentInits() int {
	if c.MaxConcurrentInits > 0 {
		return c.MaxConcurrentInits
	}
	return DefaultMaxConcurrentInits()
}

func (c PoolConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}

// memTotalMB reads MemTotal from /proc/meminfo; 0 if unknown.
func memTotalMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}
