package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// logFlushLimit bounds how long an invocation waits for the function's
// output to drain into its log after the response arrives.
const logFlushLimit = 100 * time.Millisecond

// Invoke runs one invocation of fn: on an idle sandbox with the same Key if
// there is one, else on a new sandbox (a cold start) if the memory budget
// allows (evicting idle sandboxes if needed), else after waiting in the
// queue. Function failures are returned as a Result with FunctionError set;
// errors are the platform's: ErrSaturated, ErrNoWarmSandbox (WarmOnly),
// ErrQueueFull, ErrQueueTimeout, ErrColdStartsBusy, ErrClosed, ErrUnsupportedRuntime,
// ErrInvalidFunction, ErrCode, ErrSandboxStart, or ctx's error.
//
// If ctx ends while the function runs, Invoke returns ctx.Err() at once;
// the invocation runs on to its end or deadline and its sandbox is kept.
func (p *Pool) Invoke(ctx context.Context, fn FunctionSpec, inv Invocation) (Result, error) {
	def, err := fn.validate()
	if err != nil {
		return Result{}, err
	}
	if inv.RequestID == "" {
		inv.RequestID = newRequestID()
	}
	if inv.InvokedFunctionARN == "" {
		inv.InvokedFunctionARN = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", fn.Region, fn.AccountID, fn.FunctionName)
	}
	p.retireSuperseded(fn)
	// How long a cold start may wait for an Init slot (counted from when
	// its code is ready, so that a slow fetch from a peer does not use it
	// up), or not at all for NoQueue.
	slotWait := p.cfg.initSlotWait()
	if inv.NoQueue {
		slotWait = 0
	}
	var l lease
	if inv.WarmOnly {
		l, err = p.acquireWarm(fn.Key)
	} else {
		l, err = p.acquire(ctx, fn, inv.NoQueue, false)
	}
	if err != nil {
		return Result{}, err
	}
	type ret struct {
		r   Result
		err error
	}
	ch := make(chan ret, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		r, err := p.run(fn, def, inv, l, slotWait)
		ch <- ret{r, err}
	}()
	select {
	case r := <-ch:
		return r.r, r.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Prewarm makes sure at least n initialised sandboxes exist for fn (idle or
// busy), creating the missing ones one after another, and keeps n of them
// exempt from the idle timeout and from eviction (provisioned concurrency).
// Prewarm with n = 0 lifts the exemption.
func (p *Pool) Prewarm(ctx context.Context, fn FunctionSpec, n int) error {
	def, err := fn.validate()
	if err != nil {
		return err
	}
	p.retireSuperseded(fn)
	p.mu.Lock()
	ks := p.keyLocked(fn.Key)
	ks.prewarm = n
	marked := 0
	for _, sb := range ks.idleStack {
		sb.prewarmed = marked < n
		if sb.prewarmed {
			marked++
		}
	}
	have := ks.idle + ks.busy + ks.initializing
	p.dropKeyIfEmptyLocked(fn.Key)
	p.mu.Unlock()
	for ; have < n; have++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := p.acquire(ctx, fn, false, true)
		if err != nil {
			return fmt.Errorf("prewarm %s: %w", fn.FunctionName, err)
		}
		sb, failed, err := p.coldStart(fn, def, nil, l.memMB, "provisioned-concurrency", -1)
		if err != nil {
			return fmt.Errorf("prewarm %s: %w", fn.FunctionName, err)
		}
		if failed != nil {
			return fmt.Errorf("prewarm %s: %w: %s", fn.FunctionName, ErrInitFailed, failed.Payload)
		}
		p.mu.Lock()
		sb.prewarmed = true // a pool field: guarded by p.mu like the others
		p.mu.Unlock()
		p.returnSandbox(sb)
	}
	return nil
}

// run executes an invocation under a lease; a cold start must get its Init
// slot within slotWait.
func (p *Pool) run(fn FunctionSpec, def runtimeDef, inv Invocation, l lease, slotWait time.Duration) (Result, error) {
	sb := l.sb
	cold := sb == nil
	if !cold && p.freezeIdle {
		if err := sb.thaw(); err != nil {
			p.discard(sb)
			return Result{}, fmt.Errorf("%w: thaw an idle sandbox: %w", ErrSandboxStart, err)
		}
	}
	if cold {
		var failed *Result
		var err error
		sb, failed, err = p.coldStart(fn, def, &inv, l.memMB, "on-demand", slotWait)
		if err != nil {
			return Result{}, err
		}
		if failed != nil {
			return *failed, nil
		}
	}
	return p.execute(sb, inv, cold), nil
}

// coldStart creates and initialises a sandbox for fn with mem already
// reserved. It returns the sandbox (state busy, registered in the pool), or
// a failed Result when the function's Init failed (the sandbox is gone and
// inv, if any, is answered), or a platform error. The reservation is
// consumed either way. The code is made available first; then the Init
// runs in one of the pool's Init slots, taken within slotWait (negative:
// whenever one frees), and its timer starts then.
func (p *Pool) coldStart(fn FunctionSpec, def runtimeDef, inv *Invocation, mem int, initType string, slotWait time.Duration) (*sandbox, *Result, error) {
	start := time.Now()
	sb := &sandbox{
		fn: fn, created: start,
		initDone: make(chan struct{}), initFailed: make(chan struct{}),
		dispatch: make(chan *invocation), gone: make(chan struct{}), destroyed: make(chan struct{}),
		state: StateInitializing,
	}
	registered := false
	fail := func(err error) (*sandbox, *Result, error) {
		if registered {
			p.discard(sb)
		} else {
			p.releaseLease(lease{memMB: mem})
			sb.releaseResources()
		}
		return nil, nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.InitTimeout)
	defer cancel()
	codeDir, release, err := p.cfg.Code.Acquire(ctx, fn.CodeID)
	if err != nil {
		return fail(fmt.Errorf("%w: code %s: %w", ErrCode, fn.CodeID, err))
	}
	sb.codes = append(sb.codes, release)
	layerDirs := make([]string, 0, len(fn.LayerIDs))
	for _, id := range fn.LayerIDs {
		dir, release, err := p.cfg.Code.Acquire(ctx, id)
		if err != nil {
			return fail(fmt.Errorf("%w: layer %s: %w", ErrCode, id, err))
		}
		sb.codes = append(sb.codes, release)
		layerDirs = append(layerDirs, dir)
	}

	// The Init slot bounds the CPU-bound part; a code fetch from a peer
	// waits on the network and must not hold one. Time spent waiting for
	// the slot is queueing, not Init: Init Duration leaves it out.
	waitFrom := time.Now()
	free, err := p.takeInitSlot(slotWait)
	if err != nil {
		return fail(err)
	}
	defer free()
	start = start.Add(time.Since(waitFrom))

	var launchErr error
	if p.cfg.Isolation == IsolationNone {
		launchErr = p.startPlain(sb, def, codeDir, layerDirs, initType)
	} else {
		launchErr = p.startIsolated(sb, def, codeDir, layerDirs, initType)
	}
	if launchErr != nil && !errors.Is(launchErr, errFunctionStart) {
		return fail(launchErr)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fail(ErrClosed)
	}
	p.sandboxes[sb] = struct{}{}
	p.countLocked(p.keyLocked(fn.Key), StateInitializing, 1)
	registered = true
	p.mu.Unlock()
	p.wg.Add(1)
	go p.watchExit(sb)

	rid := ""
	if inv != nil {
		rid = inv.RequestID
	}
	var failBody []byte
	var errType string
	if launchErr != nil {
		msg := strings.TrimPrefix(launchErr.Error(), errFunctionStart.Error()+": ")
		errType = "Runtime.InvalidEntrypoint"
		failBody = errorBody(errType, fmt.Sprintf("RequestId: %s Error: %s", rid, msg))
		sb.logs.platform(msg)
	} else {
		timer := time.NewTimer(p.cfg.InitTimeout)
		select {
		case <-sb.initDone:
		case <-sb.initFailed:
			failBody, errType = sb.initFailure()
		case <-sb.exited():
			// The runtime may have posted /init/error just before exiting.
			select {
			case <-sb.initFailed:
				failBody, errType = sb.initFailure()
			default:
				errType = ErrTypeExit
				failBody = exitBody(rid, sb.proc.exitDescription())
			}
		case <-timer.C:
			errType = ErrTypeTimeout
			failBody = errorBody(ErrTypeTimeout, fmt.Sprintf("RequestId: %s Error: Init timed out after %.2f seconds", rid, p.cfg.InitTimeout.Seconds()))
		case <-p.stop:
			timer.Stop()
			return fail(ErrClosed)
		}
		timer.Stop()
	}
	sb.initDur = time.Since(start)
	if failBody == nil {
		p.mu.Lock()
		if !sb.removed {
			p.setStateLocked(sb, StateBusy)
		}
		p.mu.Unlock()
		return sb, nil, nil
	}

	// Init failed: the environment is torn down and the invocation that
	// caused the cold start gets the error.
	sb.proc.kill()
	sb.waitOutput()
	peak := sb.peakMemoryMB()
	res := &Result{Payload: failBody, FunctionError: FunctionErrorUnhandled, ColdStart: true,
		InitDuration: sb.initDur, MaxMemoryUsedMB: peak, SandboxID: sb.id,
		BilledDurationMs: billedMs(sb.initDur)}
	if inv != nil {
		sb.logs.platform(fmt.Sprintf("START RequestId: %s Version: %s", rid, sb.fn.version()))
		sb.logs.endInvocation("END RequestId: "+rid,
			reportLine(rid, 0, res.BilledDurationMs, sb.fn.MemoryMB, peak, sb.initDur, "error", errType))
		res.LogTail = sb.logs.tail()
	}
	p.discard(sb)
	return nil, res, nil
}

// takeInitSlot waits until a cold start may begin its Init phase, for
// wait at most (0: not at all; negative: until a slot frees or the pool
// closes), and returns the func that frees the slot. Past MaxQueue cold
// starts already waiting, it fails at once.
func (p *Pool) takeInitSlot(wait time.Duration) (free func(), err error) {
	free = func() { <-p.initSlots }
	select {
	case p.initSlots <- struct{}{}:
		return free, nil
	default:
	}
	busy := func(why string) error {
		return fmt.Errorf("%w (%d initialising, the most at once; %s)", ErrColdStartsBusy, cap(p.initSlots), why)
	}
	var timeout <-chan time.Time
	if wait == 0 {
		return nil, busy("the invocation could not wait")
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	if p.initWaiting.Add(1) > int64(p.cfg.MaxQueue) {
		p.initWaiting.Add(-1)
		return nil, busy(fmt.Sprintf("%d cold starts already waiting", p.cfg.MaxQueue))
	}
	defer p.initWaiting.Add(-1)
	select {
	case p.initSlots <- struct{}{}:
		return free, nil
	case <-timeout:
		return nil, busy(fmt.Sprintf("none freed within %v", wait))
	case <-p.stop:
		return nil, ErrClosed
	}
}

// startIsolated takes a shell and turns it into sb.
func (p *Pool) startIsolated(sb *sandbox, def runtimeDef, codeDir string, layerDirs []string, initType string) error {
	sh, err := p.shells.get()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSandboxStart, err)
	}
	sb.id = sh.id
	sb.proc, sb.cg, sb.ln, sb.owner = sh.proc, sh.cg, sh.ln, sh.owner
	sb.api = RuntimeAPIAddr
	path, name := logStreamPath(p.cfg.LogDir, sb.fn, sb.id, sb.created)
	if sb.logs, err = openLogStream(path, name, sb.fn, p.cfg.LogCapBytes, p.cfg.LogGate, sh.out); err != nil {
		p.logStreamFailed(sb, err)
	}
	sh.out = nil // owned by the log stream now
	if err := sb.cg.setLimits(sb.fn.MemoryMB, max(sb.fn.MemoryMB, p.cfg.CPUFloorMB), p.cfg.CPUMode); err != nil {
		sh.discard()
		return fmt.Errorf("%w: cgroup limits: %w", ErrSandboxStart, err)
	}
	fds := make([]int, 0, 2+len(layerDirs))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, dir := range append([]string{codeDir, p.assetsDir}, layerDirs...) {
		fd, err := detachedReadOnlyTree(dir)
		if err != nil {
			sh.discard()
			return fmt.Errorf("%w: mount tree of %s: %w", ErrSandboxStart, dir, err)
		}
		fds = append(fds, fd)
	}
	uid, gid := p.shells.sc.sandboxIDs(sh.userNS)
	candidates, args := def.command("/var/task", "/var/runtime", "/opt")
	cfg := initConfig{
		Hostname:   "sandbox",
		Candidates: candidates,
		Args:       args,
		Env:        lambdaEnv(sb.fn, def, name, sb.api, "/var/task", "/var/runtime", initType),
		TmpMB:      sb.fn.ephemeralMB(),
		UserNS:     sh.userNS,
		UID:        uid,
		GID:        gid,
		NumLayers:  len(layerDirs),
	}
	p.rapi.serve(sb, sb.ln)
	if err := sh.launch(cfg, fds, p.cfg.InitTimeout); err != nil {
		if errors.Is(err, errFunctionStart) {
			return err // the sandbox exists (and is about to exit); Init fails
		}
		sb.proc.kill()
		return err
	}
	return nil
}

// detachedReadOnlyTree clones the mount tree at dir into a detached mount
// (open_tree OPEN_TREE_CLONE) marked read-only, nosuid and nodev; the
// sandbox init attaches it with move_mount inside its own mount namespace.
func detachedReadOnlyTree(dir string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("open_tree: %w", err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount_setattr: %w", err)
	}
	return fd, nil
}

// startPlain starts the bootstrap as a plain child process (no isolation).
func (p *Pool) startPlain(sb *sandbox, def runtimeDef, codeDir string, layerDirs []string, initType string) error {
	sb.id = newSandboxID()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSandboxStart, err)
	}
	sb.ln = ln
	sb.api = ln.Addr().String()
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSandboxStart, err)
	}
	defer outW.Close()
	path, name := logStreamPath(p.cfg.LogDir, sb.fn, sb.id, sb.created)
	if sb.logs, err = openLogStream(path, name, sb.fn, p.cfg.LogCapBytes, p.cfg.LogGate, outR); err != nil {
		p.logStreamFailed(sb, err)
	}
	optDir := "/opt"
	if len(layerDirs) > 0 {
		optDir = layerDirs[len(layerDirs)-1] // no merging without isolation
	}
	candidates, args := def.command(codeDir, p.assetsDir, optDir)
	argv0 := firstFile(candidates)
	if argv0 == "" {
		return plainFailed(sb, fmt.Errorf("%w: no bootstrap found (looked for %s)", errFunctionStart, strings.Join(candidates, ", ")))
	}
	cmd := &exec.Cmd{
		Path:   argv0,
		Args:   append([]string{argv0}, args...),
		Env:    lambdaEnv(sb.fn, def, name, sb.api, codeDir, p.assetsDir, initType),
		Dir:    codeDir,
		Stdout: outW,
		Stderr: outW,
		// A session of its own (which also makes it a process group
		// leader, killed as a group): no controlling terminal to type into.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL},
	}
	p.rapi.serve(sb, ln)
	if err := cmd.Start(); err != nil {
		return plainFailed(sb, fmt.Errorf("%w: exec %s: %w", errFunctionStart, argv0, err))
	}
	sb.proc = startWaiter(cmd, true)
	return nil
}

// plainFailed gives a plain sandbox whose bootstrap could not start a
// process that has already exited, so the common Init-failure path can
// handle it (that path words the error from err, not from the exit).
func plainFailed(sb *sandbox, err error) error {
	sb.proc = &sandboxProcess{exited: make(chan struct{})}
	close(sb.proc.exited)
	return err
}

// releaseResources frees what a sandbox that never registered holds.
func (sb *sandbox) releaseResources() {
	if sb.proc != nil {
		sb.destroy()
		return
	}
	if sb.ln != nil {
		sb.ln.Close()
	}
	if sb.logs != nil {
		sb.logs.pipe.Close()
		sb.logs.close()
	}
	for _, r := range sb.codes {
		r()
	}
}

// execute runs inv on sb, which the caller holds (state busy).
func (p *Pool) execute(sb *sandbox, inv Invocation, cold bool) Result {
	if !cold {
		sb.logs.begin()
	}
	sb.logs.platform(fmt.Sprintf("START RequestId: %s Version: %s", inv.RequestID, sb.fn.version()))
	in := &invocation{Invocation: inv, done: make(chan outcome, 1)}
	in.deadline = inv.Deadline
	if in.deadline.IsZero() {
		in.deadline = time.Now().Add(sb.fn.Timeout)
	}
	timer := time.NewTimer(time.Until(in.deadline))
	defer timer.Stop()

	var o outcome
	var status string
	start := time.Now()
	select {
	case sb.dispatch <- in:
		start = time.Now()
		select {
		case o = <-in.done:
		case <-sb.exited():
			select {
			case o = <-in.done:
			default:
				status = "error"
			}
		case <-timer.C:
			status = "timeout"
		case <-sb.gone:
			status = "error"
		}
	case <-sb.exited():
		status = "error"
	case <-timer.C:
		status = "timeout"
	case <-sb.gone:
		status = "error"
	}
	dur := time.Since(start)

	res := Result{ColdStart: cold, Duration: dur, SandboxID: sb.id}
	if cold {
		res.InitDuration = sb.initDur
	}
	res.BilledDurationMs = billedMs(dur + res.InitDuration)
	switch status {
	case "":
		res.Payload, res.FunctionError = o.payload, o.funcErr
		sb.logs.flush(logFlushLimit)
	case "timeout":
		o.errType = ErrTypeTimeout
		res.Payload, res.FunctionError = timeoutBody(inv.RequestID, sb.fn.Timeout), FunctionErrorUnhandled
		sb.proc.kill()
		sb.waitOutput()
		sb.logs.platform(fmt.Sprintf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format(logTimeLayout), inv.RequestID, sb.fn.Timeout.Seconds()))
	default:
		o.errType = ErrTypeExit
		sb.proc.kill()
		sb.waitOutput()
		res.Payload, res.FunctionError = exitBody(inv.RequestID, sb.proc.exitDescription()), FunctionErrorUnhandled
		sb.logs.platform(fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", inv.RequestID, sb.proc.exitDescription()))
		sb.logs.platform(ErrTypeExit)
	}
	res.MaxMemoryUsedMB = sb.peakMemoryMB()
	sb.logs.endInvocation("END RequestId: "+inv.RequestID,
		reportLine(inv.RequestID, dur, res.BilledDurationMs, sb.fn.MemoryMB, res.MaxMemoryUsedMB, res.InitDuration, status, o.errType))
	res.LogTail = sb.logs.tail()
	if status == "" {
		p.returnSandbox(sb)
	} else {
		p.discard(sb)
	}
	return res
}

// waitOutput waits (bounded) for the output pipe of a killed sandbox to
// reach EOF, so its last lines land before END.
func (sb *sandbox) waitOutput() {
	select {
	case <-sb.proc.exited:
	case <-time.After(2 * time.Second):
	}
	select {
	case <-sb.logs.done:
	case <-time.After(500 * time.Millisecond):
	}
}

// peakMemoryMB is the sandbox's memory high-water mark in MB (rounded up).
func (sb *sandbox) peakMemoryMB() int {
	var peak uint64
	if sb.cg != nil {
		peak, _ = sb.cg.peakMemoryBytes()
	} else if sb.proc != nil && sb.proc.pid > 0 {
		peak = vmHWM(sb.proc.pid)
	}
	return int((peak + 1<<20 - 1) >> 20)
}

// vmHWM reads a process's peak resident set (no cgroup without isolation).
func vmHWM(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

func etcFiles(uid, gid int) map[string]string {
	return map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:%d:%d::/home/sbx_user1051:/sbin/nologin\n", uid, gid),
		"group":  fmt.Sprintf("root:x:0:\nsbx_user1051:x:%d:\n", gid),
		"hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
	}
}

// hostSystemEntries lists the host paths every sandbox sees read-only.
// Symlinks (merged-/usr systems link /bin to usr/bin) are recreated as
// symlinks; missing paths are skipped.
func hostSystemEntries() []systemEntry {
	var out []systemEntry
	paths := []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
	for _, f := range []string{
		"resolv.conf", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "pki",
		"ca-certificates", "ca-certificates.conf", "alternatives", "localtime", "os-release",
		"mime.types", "protocols", "services", "gai.conf", "host.conf",
	} {
		paths = append(paths, "/etc/"+f)
	}
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err == nil {
				out = append(out, systemEntry{Path: p, Symlink: target})
			}
			continue
		}
		if st.Mode().IsDir() || st.Mode().IsRegular() {
			out = append(out, systemEntry{Path: p, IsDir: st.IsDir()})
		}
	}
	return out
}

// newRequestID returns a random UUID (version 4), like Lambda's ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
