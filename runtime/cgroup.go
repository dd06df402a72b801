package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// sandboxCgroup is one sandbox's cgroup, whatever the hierarchy version.
type sandboxCgroup interface {
	// addProc moves a process (all its threads) into the cgroup.
	addProc(pid int) error
	// setLimits applies the function's memory (no swap) and CPU share: in
	// CPUWeight mode a weight proportional to weightMB (the function's
	// memory, or the pool's floor if that is more), in CPUQuota mode a
	// quota proportional to memMB.
	setLimits(memMB, weightMB int, mode CPUMode) error
	// peakMemoryBytes is the memory high-water mark since creation.
	peakMemoryBytes() (uint64, error)
	// freeze stops every process in the cgroup; it returns once the kernel
	// has begun (the cgroup reports itself frozen a little later). thaw
	// makes them all runnable again before it returns. Both do nothing
	// where the manager has no freezer.
	freeze() error
	thaw() error
	// destroy thaws and kills whatever still runs in the cgroup and
	// removes it.
	destroy() error
}

// cgroupManager creates sandbox cgroups under the pool's own subtree.
type cgroupManager interface {
	version() int
	// canFreeze says whether sandboxCgroup.freeze works (v1 needs the
	// freezer hierarchy mounted, v2 needs Linux 5.2).
	canFreeze() bool
	create(name string) (sandboxCgroup, error)
	// cleanLeftovers kills and removes every cgroup under the pool's
	// subtree: the remains of a previous run that crashed.
	cleanLeftovers() (removed int, err error)
	// close removes the pool's (then empty) subtree.
	close() error
}

// newCgroupManager detects the cgroup layout and prepares parent/pool.
func newCgroupManager(parent, pool string) (cgroupManager, error) {
	base := filepath.Join(parent, pool)
	switch cgroups.Mode() {
	case cgroups.Unified:
		return newCgroupV2(base)
	case cgroups.Legacy, cgroups.Hybrid:
		return newCgroupV1(base)
	}
	return nil, fmt.Errorf("%w: no cgroup filesystem is mounted at %s", ErrSandboxUnsupported, cgroupRoot)
}

// ---- cgroup v1 ----

// v1Controllers are the hierarchies a sandbox must join. The pid
// namespace, not the freezer, is what kills a sandbox's whole tree; the
// freezer, joined too where it is mounted, stops idle sandboxes.
var v1Controllers = []cgroup1.Name{cgroup1.Memory, cgroup1.Cpu, cgroup1.Pids}

type cgroupV1 struct {
	base       string // e.g. /stoke/pool-0123abcd
	hasMemsw   bool
	hasFreezer bool
	anchorOnce sync.Once
}

// freezerAnchor is an empty cgroup in the pool's freezer subtree, frozen
// from the first sandbox on for the pool's life. The v1 freezer flips a
// kernel static key when the host's first cgroup starts freezing and when
// its last one thaws; flipping it patches kernel text and took 2 ms per
// freeze and per thaw in BenchmarkWarmInvokeFrozen. With the anchor frozen,
// a sandbox's freeze and thaw never flip it. (v2's freezer has no such key.)
// Close removes it with the pool's subtree.
const freezerAnchor = ".freezer-anchor"

func (m *cgroupV1) freezeAnchor() {
	dir := filepath.Join(cgroupRoot, string(cgroup1.Freezer), m.base, freezerAnchor)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return // only speed is lost
	}
	_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0)
}

func newCgroupV1(base string) (*cgroupV1, error) {
	for _, c := range v1Controllers {
		if _, err := os.Stat(filepath.Join(cgroupRoot, string(c), "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("%w: cgroup v1 controller %q is not mounted at %s/%s", ErrSandboxUnsupported, c, cgroupRoot, c)
		}
	}
	_, err := os.Stat(filepath.Join(cgroupRoot, string(cgroup1.Freezer), "cgroup.procs"))
	m := &cgroupV1{base: base, hasFreezer: err == nil}
	if _, err := cgroup1.New(cgroup1.StaticPath(base), &specs.LinuxResources{}, cgroup1.WithHierarchy(m.hierarchy)); err != nil {
		return nil, fmt.Errorf("%w: create cgroup %s: %w", ErrSandboxUnsupported, base, err)
	}
	_, err = os.Stat(filepath.Join(cgroupRoot, "memory", base, "memory.memsw.limit_in_bytes"))
	m.hasMemsw = err == nil
	return m, nil
}

// controllers are the hierarchies a sandbox joins, the freezer first: a
// frozen task dies only once thawed, so teardown thaws before it kills.
func (m *cgroupV1) controllers() []cgroup1.Name {
	if m.hasFreezer {
		return append([]cgroup1.Name{cgroup1.Freezer}, v1Controllers...)
	}
	return v1Controllers
}

func (m *cgroupV1) hierarchy() ([]cgroup1.Subsystem, error) {
	subs := []cgroup1.Subsystem{
		cgroup1.NewMemory(cgroupRoot),
		cgroup1.NewCpu(cgroupRoot),
		cgroup1.NewPids(cgroupRoot),
	}
	if m.hasFreezer {
		subs = append(subs, cgroup1.NewFreezer(cgroupRoot))
	}
	return subs, nil
}

func (m *cgroupV1) version() int { return 1 }

func (m *cgroupV1) canFreeze() bool { return m.hasFreezer }

func (m *cgroupV1) create(name string) (sandboxCgroup, error) {
	if m.hasFreezer {
		m.anchorOnce.Do(m.freezeAnchor)
	}
	limit := int64(PidsLimit)
	cg, err := cgroup1.New(cgroup1.StaticPath(filepath.Join(m.base, name)),
		&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}},
		cgroup1.WithHierarchy(m.hierarchy))
	if err != nil {
		return nil, err
	}
	return &sandboxCgroupV1{cg: cg, mgr: m, path: filepath.Join(m.base, name)}, nil
}

// cleanLeftovers counts a sandbox once although it has a cgroup in each
// controller's hierarchy.
func (m *cgroupV1) cleanLeftovers() (int, error) {
	sandboxes := make(map[string]bool)
	var errs []error
	for _, c := range m.controllers() {
		removed, err := removeChildCgroups(filepath.Join(cgroupRoot, string(c), m.base), killCgroupProcs)
		for _, name := range removed {
			sandboxes[name] = true
		}
		errs = append(errs, err)
	}
	delete(sandboxes, freezerAnchor) // not a sandbox
	return len(sandboxes), errors.Join(errs...)
}

func (m *cgroupV1) close() error {
	var errs []error
	if m.hasFreezer {
		anchor := filepath.Join(cgroupRoot, string(cgroup1.Freezer), m.base, freezerAnchor)
		killCgroupProcs(anchor) // thaws it (it holds no process), releasing the static key
		if err := rmdirRetry(anchor); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range m.controllers() {
		if err := rmdirRetry(filepath.Join(cgroupRoot, string(c), m.base)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
		// The shared parent goes too once no pool uses it (EBUSY otherwise).
		_ = syscall.Rmdir(filepath.Join(cgroupRoot, string(c), filepath.Dir(m.base)))
	}
	return errors.Join(errs...)
}

type sandboxCgroupV1 struct {
	cg         cgroup1.Cgroup
	mgr        *cgroupV1
	path       string
	peak       counterFile
	freezeFile controlFile // freezer.state
}

func (s *sandboxCgroupV1) addProc(pid int) error { return s.cg.AddProc(uint64(pid)) }

func (s *sandboxCgroupV1) setLimits(memMB, weightMB int, mode CPUMode) error {
	mem := int64(memMB) << 20
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}, CPU: &specs.LinuxCPU{}}
	if s.mgr.hasMemsw {
		res.Memory.Swap = &mem // memsw = memory + swap: no swap at all
	}
	switch mode {
	case CPUQuota:
		period := uint64(100_000)
		quota := max(int64(memMB)*int64(period)/MemoryPerVCPU, 1000)
		res.CPU.Period, res.CPU.Quota = &period, &quota
	default:
		shares := max(uint64(weightMB)*1024/MemoryPerVCPU, 2)
		res.CPU.Shares = &shares
	}
	return s.cg.Update(res)
}

func (s *sandboxCgroupV1) peakMemoryBytes() (uint64, error) {
	return s.peak.read(filepath.Join(cgroupRoot, "memory", s.path, "memory.max_usage_in_bytes"))
}

func (s *sandboxCgroupV1) freezerState(state string) error {
	if !s.mgr.hasFreezer {
		return nil
	}
	return s.freezeFile.write(filepath.Join(cgroupRoot, string(cgroup1.Freezer), s.path, "freezer.state"), state)
}

func (s *sandboxCgroupV1) freeze() error { return s.freezerState("FROZEN") }
func (s *sandboxCgroupV1) thaw() error   { return s.freezerState("THAWED") }

func (s *sandboxCgroupV1) destroy() error {
	s.peak.close()
	_ = s.thaw()
	s.freezeFile.close()
	for _, c := range s.mgr.controllers() {
		killCgroupProcs(filepath.Join(cgroupRoot, string(c), s.path))
	}
	var errs []error
	for _, c := range s.mgr.controllers() {
		if err := rmdirRetry(filepath.Join(cgroupRoot, string(c), s.path)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ---- cgroup v2 ----

type cgroupV2 struct {
	base       string
	hasFreezer bool // cgroup.freeze exists (Linux 5.2)
}

var v2Controllers = []string{"memory", "cpu", "pids"}

func newCgroupV2(base string) (*cgroupV2, error) {
	// NewManager enables the controllers in every ancestor's
	// subtree_control. That fails (EBUSY) when an ancestor other than the
	// root holds processes; CgroupParent must then name a delegated subtree.
	m, err := cgroup2.NewManager(cgroupRoot, base, &cgroup2.Resources{})
	if err != nil {
		return nil, fmt.Errorf("%w: create cgroup %s: %w", ErrSandboxUnsupported, base, err)
	}
	if err := m.ToggleControllers(v2Controllers, cgroup2.Enable); err != nil {
		return nil, fmt.Errorf("%w: enable %v controllers for %s (is CgroupParent delegated?): %w", ErrSandboxUnsupported, v2Controllers, base, err)
	}
	// ToggleControllers stops at the parent of base; base itself must pass
	// the controllers on to the sandboxes below it.
	f := filepath.Join(cgroupRoot, base, "cgroup.subtree_control")
	if err := os.WriteFile(f, []byte("+memory +cpu +pids"), 0); err != nil {
		return nil, fmt.Errorf("%w: write %s: %w", ErrSandboxUnsupported, f, err)
	}
	_, err = os.Stat(filepath.Join(cgroupRoot, base, "cgroup.freeze"))
	return &cgroupV2{base: base, hasFreezer: err == nil}, nil
}

func (m *cgroupV2) version() int { return 2 }

func (m *cgroupV2) canFreeze() bool { return m.hasFreezer }

func (m *cgroupV2) create(name string) (sandboxCgroup, error) {
	limit := int64(PidsLimit)
	path := filepath.Join(m.base, name)
	mg, err := cgroup2.NewManager(cgroupRoot, path, &cgroup2.Resources{Pids: &cgroup2.Pids{Max: limit}})
	if err != nil {
		return nil, err
	}
	return &sandboxCgroupV2{m: mg, mgr: m, path: path}, nil
}

func (m *cgroupV2) cleanLeftovers() (int, error) {
	removed, err := removeChildCgroups(filepath.Join(cgroupRoot, m.base), func(p string) {
		if os.WriteFile(filepath.Join(p, "cgroup.kill"), []byte("1"), 0) != nil {
			killCgroupProcs(p)
		}
	})
	return len(removed), err
}

func (m *cgroupV2) close() error {
	if err := rmdirRetry(filepath.Join(cgroupRoot, m.base)); err != nil && !os.IsNotExist(err) {
		return err
	}
	_ = syscall.Rmdir(filepath.Join(cgroupRoot, filepath.Dir(m.base)))
	return nil
}

type sandboxCgroupV2 struct {
	m          *cgroup2.Manager
	mgr        *cgroupV2
	path       string
	peak       counterFile
	freezeFile controlFile // cgroup.freeze
}

func (s *sandboxCgroupV2) addProc(pid int) error { return s.m.AddProc(uint64(pid)) }

func (s *sandboxCgroupV2) setLimits(memMB, weightMB int, mode CPUMode) error {
	mem := int64(memMB) << 20
	zero := int64(0)
	res := &cgroup2.Resources{Memory: &cgroup2.Memory{Max: &mem}, CPU: &cgroup2.CPU{}}
	if _, err := os.Stat(filepath.Join(cgroupRoot, s.path, "memory.swap.max")); err == nil {
		res.Memory.Swap = &zero
	}
	switch mode {
	case CPUQuota:
		period := uint64(100_000)
		quota := max(int64(memMB)*int64(period)/MemoryPerVCPU, 1000)
		res.CPU.Max = cgroup2.NewCPUMax(&quota, &period)
	default:
		w := min(max(uint64(weightMB)*100/MemoryPerVCPU, 1), 10000)
		res.CPU.Weight = &w
	}
	return s.m.Update(res)
}

func (s *sandboxCgroupV2) peakMemoryBytes() (uint64, error) {
	return s.peak.read(filepath.Join(cgroupRoot, s.path, "memory.peak"))
}

func (s *sandboxCgroupV2) setFrozen(v string) error {
	if !s.mgr.hasFreezer {
		return nil
	}
	return s.freezeFile.write(filepath.Join(cgroupRoot, s.path, "cgroup.freeze"), v)
}

func (s *sandboxCgroupV2) freeze() error { return s.setFrozen("1") }
func (s *sandboxCgroupV2) thaw() error   { return s.setFrozen("0") }

// destroy need not thaw for cgroup.kill (it kills frozen tasks), but does
// for the fallback's signals.
func (s *sandboxCgroupV2) destroy() error {
	s.peak.close()
	_ = s.thaw()
	s.freezeFile.close()
	p := filepath.Join(cgroupRoot, s.path)
	if os.WriteFile(filepath.Join(p, "cgroup.kill"), []byte("1"), 0) != nil {
		killCgroupProcs(p)
	}
	if err := rmdirRetry(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// ---- helpers ----

// removeChildCgroups kills the processes of every cgroup directly under dir
// (with kill) and removes it, returning the names it removed. A missing dir
// has nothing to remove.
func removeChildCgroups(dir string, kill func(cgroupDir string)) (removed []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		kill(p)
		if err := rmdirRetry(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// killCgroupProcs SIGKILLs every process listed in dir/cgroup.procs. A
// sandbox's processes share one pid namespace, so killing its init is
// enough in practice; this also covers a half-built sandbox. A frozen
// cgroup (a leftover of a crashed run) is thawed first: a frozen task dies
// only once thawed.
func killCgroupProcs(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0) // v1
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)      // v2
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// rmdirRetry removes a cgroup directory, retrying while the kernel still
// reports it busy (tasks exiting). It gives up after about a second.
func rmdirRetry(dir string) error {
	var err error
	for i := range 50 {
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EAGAIN) {
			// Sub-cgroups (a leftover subtree): remove children first.
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if e.IsDir() {
						killCgroupProcs(filepath.Join(dir, e.Name()))
						_ = rmdirRetry(filepath.Join(dir, e.Name()))
					}
				}
				continue
			}
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		killCgroupProcs(dir)
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return &os.PathError{Op: "rmdir", Path: dir, Err: err}
}

// counterFile reads a cgroup counter through a descriptor opened once, so
// the per-invocation cost is one pread. The mutex orders a read by the
// invocation path against close by a concurrent teardown (Pool.Close).
type counterFile struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (c *counterFile) read(path string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, os.ErrClosed
	}
	if c.f == nil {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		c.f = f
	}
	var buf [32]byte
	n, err := c.f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 64)
}

// controlFile writes a cgroup control file through a descriptor opened
// once: a thaw on the warm invocation path costs one pwrite.
type controlFile struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (c *controlFile) write(path, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return os.ErrClosed
	}
	if c.f == nil {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		c.f = f
	}
	_, err := c.f.WriteAt([]byte(value), 0)
	return err
}

func (c *controlFile) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

func (c *counterFile) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}
