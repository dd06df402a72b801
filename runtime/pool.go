package runtime

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs functions in sandboxes on one node: it creates them (cold
// starts), keeps them warm for reuse by the same FunctionSpec.Key, bounds
// them by a memory budget (evicting idle ones, least recently used first),
// queues briefly when the node is full, and tears them down after
// IdleTimeout. All methods are safe for concurrent use.
type Pool struct {
	cfg  PoolConfig
	log  *slog.Logger
	name string // this pool's cgroup subtree, derived from StateDir

	cgroups cgroupManager // nil without isolation
	shells  *shellPool    // nil without isolation
	userNS  bool
	// freezeIdle: idle sandboxes are frozen (isolation, a freezer, and
	// not KeepIdleRunning).
	freezeIdle bool
	rapi       *rapiServer
	assetsDir  string
	system     []systemEntry

	mu        sync.Mutex
	closed    bool
	sandboxes map[*sandbox]struct{}
	keys      map[string]*keyState
	// currentKey maps a function version (account, name, version) to
	// the Key of its latest invocation: sandboxes of any other Key of
	// that version run a superseded configuration or code (see
	// noteKeyLocked).
	currentKey map[string]string
	idleLRU    *list.List // of *sandbox; front = most recently used
	waiters    *list.List // of *waiter, FIFO

	// initSlots holds one token per cold start in its Init phase
	// (MaxConcurrentInits); initWaiting counts cold starts waiting for one.
	initSlots   chan struct{}
	initWaiting atomic.Int64

	// Totals, written under mu, read lock-free by Stats.
	nInit, nIdle, nBusy, memUsed, queued atomic.Int64
	reapPasses                           atomic.Int64 // for tests

	stop chan struct{}
	wg   sync.WaitGroup
}

type keyState struct {
	initializing, idle, busy int
	idleStack                []*sandbox // most recently used last
	prewarm                  int        // sandboxes Prewarm asked to keep
}

// lease is the right to run one invocation: an idle sandbox, or memory
// reserved for a new one.
type lease struct {
	sb    *sandbox
	memMB int
}

type waiter struct {
	key   string
	mem   int
	fresh bool       // wants memory for a new sandbox, not an idle one
	grant chan lease // buffered(1)
	elem  *list.Element
}

// NewPool validates cfg, prepares StateDir and LogDir, removes leftovers of
// a crashed previous run of a pool with the same StateDir, and (with full
// isolation) checks that sandboxes can be created, returning an error
// wrapping ErrSandboxUnsupported that says what is missing when not.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(cfg.StateDir))
	p := &Pool{
		cfg:        cfg,
		log:        cfg.logger().With("component", "runtime"),
		name:       "pool-" + hex.EncodeToString(sum[:])[:12],
		rapi:       newRAPIServer(),
		sandboxes:  make(map[*sandbox]struct{}),
		keys:       make(map[string]*keyState),
		currentKey: make(map[string]string),
		idleLRU:    list.New(),
		waiters:    list.New(),
		initSlots:  make(chan struct{}, cfg.maxConcurrentInits()),
		stop:       make(chan struct{}),
	}
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("runtime: state dir: %w", err)
	}
	if err := os.MkdirAll(cfg.LogDir, 0o750); err != nil {
		return nil, fmt.Errorf("runtime: log dir: %w", err)
	}
	cleanStateDir(cfg.StateDir)
	var err error
	if p.assetsDir, err = writeBootstraps(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("runtime: write bootstraps: %w", err)
	}
	if cfg.Isolation == IsolationNone {
		p.log.Warn("SANDBOXING DISABLED (--insecure-no-sandbox): function code runs as plain child processes with the agent's user, files and network; use only for local development")
	} else if err := p.initIsolation(); err != nil {
		p.closeIsolation()
		return nil, err
	}
	p.wg.Add(1)
	go p.reapIdle()
	return p, nil
}

func (p *Pool) initIsolation() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("%w: creating sandboxes needs root (the agent runs as uid %d); run it as root, or pass --insecure-no-sandbox to run functions as plain processes without isolation", ErrSandboxUnsupported, uid)
	}
	var err error
	p.cgroups, err = newCgroupManager(p.cfg.CgroupParent, p.name)
	if err != nil {
		return fmt.Errorf("%w (or pass --insecure-no-sandbox to run without isolation)", err)
	}
	if n, err := p.cgroups.cleanLeftovers(); err != nil {
		p.log.Warn("removing leftover sandbox cgroups failed", "err", err)
	} else if n > 0 {
		p.log.Info("removed leftover sandboxes of a previous run", "count", n)
	}
	p.system = hostSystemEntries()

	// Probe: make one shell now, so an impossible setup fails at start
	// with a reason rather than at the first invocation.
	sc := spawnConfig{cgroups: p.cgroups, hostIDBase: p.cfg.HostIDBase, owners: newOwnerIDs(p.cfg.HostIDBase),
		system: p.system, timeout: p.cfg.InitTimeout}
	sh, errNS := newShell(sc, true)
	p.userNS = errNS == nil
	if errNS != nil {
		var errPlain error
		sh, errPlain = newShell(sc, false)
		if errPlain != nil {
			return fmt.Errorf("%w: cannot create namespaces for a sandbox: %v (without a user namespace: %v); pass --insecure-no-sandbox to run without isolation", ErrSandboxUnsupported, errNS, errPlain)
		}
		p.log.Warn("user namespaces unavailable; sandboxes use the other namespaces and drop to an unprivileged host uid", "err", errNS)
	}
	p.shells = newShellPool(sc, p.cfg.ShellPoolSize, p.userNS, func(msg string, args ...any) { p.log.Warn(msg, args...) })
	select {
	case p.shells.ready <- sh:
	default:
		sh.discard()
	}
	p.freezeIdle = !p.cfg.KeepIdleRunning && p.cgroups.canFreeze()
	if !p.cfg.KeepIdleRunning && !p.freezeIdle {
		p.log.Warn("no cgroup freezer: idle sandboxes keep running until they are torn down")
	}
	p.log.Info("sandbox pool ready", "cgroup_version", p.cgroups.version(), "cgroup", p.cfg.CgroupParent+"/"+p.name,
		"user_namespace", p.userNS, "cpu_mode", p.cfg.CPUMode, "memory_budget_mb", p.cfg.MemoryBudgetMB,
		"freeze_idle", p.freezeIdle)
	return nil
}

func (p *Pool) closeIsolation() {
	if p.shells != nil {
		p.shells.close()
	}
	if p.cgroups != nil {
		_ = p.cgroups.close()
	}
}

// Stats returns a snapshot: totals are read without locking, the per-Key
// counts under the pool lock (held only to copy them).
func (p *Pool) Stats() Stats {
	s := Stats{
		Initializing:   int(p.nInit.Load()),
		Idle:           int(p.nIdle.Load()),
		Busy:           int(p.nBusy.Load()),
		MemoryUsedMB:   int(p.memUsed.Load()),
		MemoryBudgetMB: p.cfg.MemoryBudgetMB,
		Queued:         int(p.queued.Load()),
		InitQueued:     int(p.initWaiting.Load()),
		Isolation:      p.cfg.Isolation,
	}
	if p.shells != nil {
		s.ReadyShells = p.shells.readyCount()
	}
	p.mu.Lock()
	s.ByKey = make(map[string]KeyStats, len(p.keys))
	for k, ks := range p.keys {
		s.ByKey[k] = KeyStats{Initializing: ks.initializing, Idle: ks.idle, Busy: ks.busy}
	}
	p.mu.Unlock()
	return s
}

// Close tears every sandbox down (busy ones too: their invocations end
// with Runtime.ExitError), fails queued invocations with ErrClosed and
// waits for the pool's goroutines, or for ctx.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for e := p.waiters.Front(); e != nil; e = e.Next() {
		e.Value.(*waiter).elem = nil
	}
	p.waiters.Init()
	p.queued.Store(0)
	all := make([]*sandbox, 0, len(p.sandboxes))
	for sb := range p.sandboxes {
		all = append(all, sb)
	}
	p.mu.Unlock()
	close(p.stop)

	var wg sync.WaitGroup
	for _, sb := range all {
		wg.Add(1)
		go func() { defer wg.Done(); sb.destroy() }()
	}
	wg.Wait()
	p.rapi.close()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.closeIsolation()
	return err
}

// ---- bookkeeping (all *Locked methods need p.mu) ----

func (p *Pool) keyLocked(key string) *keyState {
	ks := p.keys[key]
	if ks == nil {
		ks = &keyState{}
		p.keys[key] = ks
	}
	return ks
}

func (p *Pool) dropKeyIfEmptyLocked(key string) {
	if ks := p.keys[key]; ks != nil && ks.initializing+ks.idle+ks.busy == 0 && ks.prewarm == 0 {
		delete(p.keys, key)
	}
}

// tryAcquireLocked gives an idle sandbox of key, or reserves mem, evicting
// idle sandboxes (least recently used first, never prewarmed ones) if that
// makes room. Evicted sandboxes are returned for teardown outside the lock.
func (p *Pool) tryAcquireLocked(key string, mem int, fresh bool) (lease, []*sandbox, bool) {
	if !fresh {
		if sb := p.takeIdleLocked(key); sb != nil {
			return lease{sb: sb}, nil, true
		}
	}
	free := p.cfg.MemoryBudgetMB - int(p.memUsed.Load())
	if free < mem {
		var evict []*sandbox
		got := 0
		for e := p.idleLRU.Back(); e != nil && free+got < mem; e = e.Prev() {
			sb := e.Value.(*sandbox)
			if sb.prewarmed {
				continue
			}
			evict = append(evict, sb)
			got += sb.fn.MemoryMB
		}
		if free+got < mem {
			return lease{}, nil, false
		}
		for _, sb := range evict {
			p.removeLocked(sb)
		}
		return p.reserveLocked(mem), evict, true
	}
	return p.reserveLocked(mem), nil, true
}

// takeIdleLocked marks the most recently used idle sandbox of key busy and
// returns it, or returns nil when key has none.
func (p *Pool) takeIdleLocked(key string) *sandbox {
	ks := p.keys[key]
	if ks == nil || len(ks.idleStack) == 0 {
		return nil
	}
	sb := ks.idleStack[len(ks.idleStack)-1]
	ks.idleStack = ks.idleStack[:len(ks.idleStack)-1]
	p.idleLRU.Remove(sb.idleElem)
	sb.idleElem = nil
	p.setStateLocked(sb, StateBusy)
	return sb
}

// countLocked adds d to the per-Key and the total counts of sandboxes in
// state s.
func (p *Pool) countLocked(ks *keyState, s SandboxState, d int) {
	switch s {
	case StateInitializing:
		ks.initializing += d
		p.nInit.Add(int64(d))
	case StateIdle:
		ks.idle += d
		p.nIdle.Add(int64(d))
	case StateBusy:
		ks.busy += d
		p.nBusy.Add(int64(d))
	}
}

// setStateLocked moves a registered sandbox to state to, keeping the counts
// in step, and returns its Key's state.
func (p *Pool) setStateLocked(sb *sandbox, to SandboxState) *keyState {
	ks := p.keyLocked(sb.fn.Key)
	p.countLocked(ks, sb.state, -1)
	p.countLocked(ks, to, 1)
	sb.state = to
	return ks
}

func (p *Pool) reserveLocked(mem int) lease {
	p.memUsed.Add(int64(mem))
	return lease{memMB: mem}
}

// removeLocked takes sb out of the pool's accounting (once).
func (p *Pool) removeLocked(sb *sandbox) bool {
	if sb.removed {
		return false
	}
	sb.removed = true
	ks := p.keyLocked(sb.fn.Key)
	p.countLocked(ks, sb.state, -1)
	if sb.state == StateIdle {
		for i, s := range ks.idleStack {
			if s == sb {
				ks.idleStack = append(ks.idleStack[:i], ks.idleStack[i+1:]...)
				break
			}
		}
		if sb.idleElem != nil {
			p.idleLRU.Remove(sb.idleElem)
			sb.idleElem = nil
		}
	}
	p.memUsed.Add(-int64(sb.fn.MemoryMB))
	delete(p.sandboxes, sb)
	p.dropKeyIfEmptyLocked(sb.fn.Key)
	return true
}

// RetireStale tears down at once the idle sandboxes whose FunctionSpec
// stale reports replaced (its function was updated or deleted since the
// sandbox started), instead of leaving them idle for the keep-alive with
// their memory reserved, and ends the Prewarm of their Key. Busy ones are
// checked again when the caller next calls. stale is called once per Key,
// without the pool's lock held. It returns how many sandboxes it retired.
func (p *Pool) RetireStale(stale func(FunctionSpec) bool) int {
	p.mu.Lock()
	specs := make([]FunctionSpec, 0, len(p.keys))
	for _, ks := range p.keys {
		if len(ks.idleStack) > 0 {
			specs = append(specs, ks.idleStack[0].fn)
		}
	}
	p.mu.Unlock()
	var staleKeys []string
	for _, fn := range specs {
		if stale(fn) {
			staleKeys = append(staleKeys, fn.Key)
		}
	}
	if len(staleKeys) == 0 {
		return 0
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0
	}
	var retired []*sandbox
	for _, key := range staleKeys {
		ks := p.keys[key]
		if ks == nil {
			continue
		}
		ks.prewarm = 0
		for _, sb := range slices.Clone(ks.idleStack) {
			if p.removeLocked(sb) {
				retired = append(retired, sb)
			}
		}
	}
	var evicted []*sandbox
	if len(retired) > 0 {
		evicted = p.serveQueueLocked() // the memory freed goes to the queue
	}
	p.mu.Unlock()
	for _, sb := range retired {
		p.log.Info("retiring a sandbox of a replaced configuration or code", "sandbox", sb.id, "function", sb.fn.FunctionName, "key", sb.fn.Key)
	}
	p.destroyAsync(append(retired, evicted...))
	return len(retired)
}

// functionVersion identifies a function version across its Keys.
func functionVersion(fn FunctionSpec) string {
	return fn.AccountID + "/" + fn.FunctionName + "/" + fn.version()
}

// supersededLocked says whether sb runs a configuration or code its
// function version has since replaced.
func (p *Pool) supersededLocked(sb *sandbox) bool {
	cur, ok := p.currentKey[functionVersion(sb.fn)]
	return ok && cur != sb.fn.Key
}

// noteKeyLocked records fn.Key as its version's current Key. If that
// replaces another Key (UpdateFunctionConfiguration or UpdateFunctionCode
// changed the revision in it), the old Key's sandboxes are retired at once
// instead of idling for the keep-alive with their memory reserved: the
// idle ones are removed and returned for teardown, busy ones are discarded
// when they return (returnSandbox), and its provisioned concurrency ends.
// The pool cannot order Keys, so a late request carrying the old Key (from
// a node whose replica lags) retires the new one in turn; that costs cold
// starts, never a wrong answer.
func (p *Pool) noteKeyLocked(fn FunctionSpec) []*sandbox {
	v := functionVersion(fn)
	old, ok := p.currentKey[v]
	p.currentKey[v] = fn.Key
	if !ok || old == fn.Key {
		return nil
	}
	ks := p.keys[old]
	if ks == nil {
		return nil
	}
	ks.prewarm = 0
	retired := slices.Clone(ks.idleStack)
	for _, sb := range retired {
		p.removeLocked(sb)
	}
	p.dropKeyIfEmptyLocked(old)
	return retired
}

// retireSuperseded notes fn.Key (noteKeyLocked) and tears down what it
// supersedes; the memory freed goes to the queue.
func (p *Pool) retireSuperseded(fn FunctionSpec) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	retired := p.noteKeyLocked(fn)
	if len(retired) > 0 {
		retired = append(retired, p.serveQueueLocked()...)
	}
	p.mu.Unlock()
	for _, sb := range retired {
		p.log.Info("retiring a sandbox of a superseded configuration or code", "sandbox", sb.id, "function", sb.fn.FunctionName, "key", sb.fn.Key)
	}
	p.destroyAsync(retired)
}

// serveQueueLocked grants waiting invocations whatever has become
// available, in arrival order.
func (p *Pool) serveQueueLocked() []*sandbox {
	var evicted []*sandbox
	for e := p.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		if l, ev, ok := p.tryAcquireLocked(w.key, w.mem, w.fresh); ok {
			evicted = append(evicted, ev...)
			p.waiters.Remove(e)
			p.queued.Add(-1)
			w.elem = nil
			w.grant <- l
		}
		e = next
	}
	return evicted
}

func (p *Pool) destroyAsync(sbs []*sandbox) {
	for _, sb := range sbs {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			sb.destroy()
		}()
	}
}

// acquire waits for a lease for fn: an idle sandbox of its Key, or memory
// for a new one (only memory when fresh is set).
func (p *Pool) acquire(ctx context.Context, fn FunctionSpec, noQueue, fresh bool) (lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return lease{}, ErrClosed
	}
	if l, evicted, ok := p.tryAcquireLocked(fn.Key, fn.MemoryMB, fresh); ok {
		p.mu.Unlock()
		p.destroyAsync(evicted)
		return l, nil
	}
	if noQueue {
		p.mu.Unlock()
		return lease{}, ErrSaturated
	}
	if p.waiters.Len() >= p.cfg.MaxQueue {
		p.mu.Unlock()
		return lease{}, fmt.Errorf("%w (%d waiting)", ErrQueueFull, p.cfg.MaxQueue)
	}
	w := &waiter{key: fn.Key, mem: fn.MemoryMB, fresh: fresh, grant: make(chan lease, 1)}
	w.elem = p.waiters.PushBack(w)
	p.queued.Add(1)
	p.mu.Unlock()

	t := time.NewTimer(p.cfg.QueueTimeout)
	defer t.Stop()
	var err error
	select {
	case l := <-w.grant:
		return l, nil
	case <-t.C:
		err = fmt.Errorf("%w after %v", ErrQueueTimeout, p.cfg.QueueTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	case <-p.stop:
		err = ErrClosed
	}
	p.mu.Lock()
	if w.elem != nil {
		p.waiters.Remove(w.elem)
		p.queued.Add(-1)
		w.elem = nil
		p.mu.Unlock()
		return lease{}, err
	}
	p.mu.Unlock()
	select {
	case l := <-w.grant: // granted while we gave up: hand it back
		p.releaseLease(l)
	default: // Close emptied the queue
	}
	return lease{}, err
}

// releaseLease returns an unused lease.
func (p *Pool) releaseLease(l lease) {
	if l.sb != nil {
		p.returnSandbox(l.sb)
		return
	}
	p.mu.Lock()
	p.memUsed.Add(-int64(l.memMB))
	evicted := p.serveQueueLocked()
	p.mu.Unlock()
	p.destroyAsync(evicted)
}

// returnSandbox puts a sandbox that finished an invocation back to idle,
// to be frozen once its runtime waits on /next (freezeIdle), or discards
// it if its process has died meanwhile. The freeze is asked for before the
// sandbox is idle, while no one else can take it: its next invocation
// thaws it (run) only after taking it from idle.
func (p *Pool) returnSandbox(sb *sandbox) {
	select {
	case <-sb.exited():
		p.discard(sb)
		return
	default:
	}
	if p.freezeIdle {
		if err := sb.freezeWhenWaiting(); err != nil {
			p.log.Warn("freezing an idle sandbox failed; discarding it", "sandbox", sb.id, "err", err)
			p.discard(sb)
			return
		}
	}
	p.mu.Lock()
	if sb.removed || p.closed || p.supersededLocked(sb) {
		p.mu.Unlock()
		p.discard(sb)
		return
	}
	ks := p.setStateLocked(sb, StateIdle)
	sb.lastUsed = time.Now()
	ks.idleStack = append(ks.idleStack, sb)
	sb.idleElem = p.idleLRU.PushFront(sb)
	evicted := p.serveQueueLocked()
	p.mu.Unlock()
	p.destroyAsync(evicted)
}

// discard removes sb from the pool and tears it down (synchronously).
func (p *Pool) discard(sb *sandbox) {
	p.mu.Lock()
	p.removeLocked(sb)
	evicted := p.serveQueueLocked()
	p.mu.Unlock()
	p.destroyAsync(evicted)
	sb.destroy()
}

// watchExit discards a sandbox whose process dies while it is idle (a
// crash between invocations); busy and initializing sandboxes are handled
// by the invocation that owns them.
func (p *Pool) watchExit(sb *sandbox) {
	defer p.wg.Done()
	select {
	case <-sb.exited():
	case <-sb.gone:
		return
	}
	p.mu.Lock()
	idle := sb.state == StateIdle && !sb.removed
	p.mu.Unlock()
	if idle {
		p.log.Info("idle sandbox exited", "sandbox", sb.id, "function", sb.fn.FunctionName, "exit", sb.proc.exitDescription())
		p.discard(sb)
	}
}

// reapIdle tears down sandboxes idle for longer than IdleTimeout.
func (p *Pool) reapIdle() {
	defer p.wg.Done()
	period := min(max(p.cfg.IdleTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-p.cfg.IdleTimeout)
		var expired []*sandbox
		p.mu.Lock()
		for e := p.idleLRU.Back(); e != nil; {
			prev := e.Prev()
			sb := e.Value.(*sandbox)
			if sb.lastUsed.After(cutoff) {
				break // the rest were used more recently
			}
			if !sb.prewarmed {
				p.removeLocked(sb)
				expired = append(expired, sb)
			}
			e = prev
		}
		// Forget the current Key of versions with no sandbox left (none
		// can be superseded; a cold start in flight registers later).
		live := make(map[string]bool, len(p.sandboxes))
		for sb := range p.sandboxes {
			live[functionVersion(sb.fn)] = true
		}
		for v := range p.currentKey {
			if !live[v] {
				delete(p.currentKey, v)
			}
		}
		evicted := p.serveQueueLocked()
		p.mu.Unlock()
		p.destroyAsync(append(expired, evicted...))
		p.reapPasses.Add(1)
	}
}

// cleanStateDir removes temporary leftovers under StateDir. Sandboxes never
// mount anything in the host's mount namespace (every mount is made inside
// the sandbox's own), so a crash leaves no mounts behind.
func cleanStateDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if len(e.Name()) > 12 && e.Name()[:12] == ".bootstraps-" {
			_ = os.RemoveAll(dir + "/" + e.Name())
		}
	}
}
