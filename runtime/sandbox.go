package runtime

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// sandbox is one execution environment: a process tree running a
// function's bootstrap, its Runtime API listener, its cgroup and its log
// stream. Fields under "pool" are guarded by Pool.mu; fields under "rapi"
// by sandbox.mu.
type sandbox struct {
	id    string
	fn    FunctionSpec
	proc  *sandboxProcess
	cg    sandboxCgroup // nil without isolation
	owner *nsOwner      // owner of its user namespace; nil without one
	ln    net.Listener
	logs  *logStream
	api   string // AWS_LAMBDA_RUNTIME_API value
	codes []func()

	created time.Time
	initDur time.Duration

	// pool
	state     SandboxState
	lastUsed  time.Time
	idleElem  *list.Element // position in the idle LRU; nil when not idle
	prewarmed bool
	removed   bool

	// rapi
	mu           sync.Mutex
	nextWaiting  bool
	current      *invocation
	initSignaled bool
	initErr      []byte
	initErrType  string

	initDone   chan struct{} // closed at the first /next
	initFailed chan struct{} // closed by /init/error
	dispatch   chan *invocation
	gone       chan struct{} // closed when teardown starts
	goneOnce   sync.Once
	destroyed  chan struct{} // closed when teardown has finished

	// freeze state, under freezeMu (see freezeWhenWaiting)
	freezeMu   sync.Mutex
	idleFreeze bool // the pool wants it frozen once the runtime waits on /next
	frozen     bool
}

// An idle sandbox is frozen (its cgroup: every process stops) and thawed
// when an invocation takes it, as on Lambda. It is frozen only once its
// runtime waits on /next, not as soon as the pool marks it idle: frozen
// halfway through its loop, the runtime would first have to finish it and
// ask for the next event after the thaw, adding a round trip to the warm
// path. So the pool asks (freezeWhenWaiting) and whichever comes second,
// the ask or /next (nextArrived), freezes; both decide under freezeMu,
// and /next sets nextWaiting before it calls nextArrived, so one of them
// sees the other. thaw withdraws the ask. The pool calls freezeWhenWaiting
// and thaw only while it alone holds the sandbox (busy, on its way to or
// from idle). Teardown thaws (a frozen task dies only once thawed), after
// which nothing freezes it again. Without a cgroup (no isolation) none of
// this happens.

// freezeWhenWaiting asks for the sandbox to be frozen once its runtime
// waits on /next (now, if it already does).
func (sb *sandbox) freezeWhenWaiting() error {
	sb.freezeMu.Lock()
	defer sb.freezeMu.Unlock()
	sb.idleFreeze = true
	sb.mu.Lock()
	waiting := sb.nextWaiting
	sb.mu.Unlock()
	if !waiting {
		return nil
	}
	return sb.freezeLocked()
}

// nextArrived is called by /next once nextWaiting is set.
func (sb *sandbox) nextArrived() error {
	sb.freezeMu.Lock()
	defer sb.freezeMu.Unlock()
	if !sb.idleFreeze {
		return nil
	}
	return sb.freezeLocked()
}

func (sb *sandbox) freezeLocked() error {
	select {
	case <-sb.gone:
		return nil
	default:
	}
	if sb.cg == nil || sb.frozen {
		return nil
	}
	if err := sb.cg.freeze(); err != nil {
		return err
	}
	sb.frozen = true
	return nil
}

// thaw withdraws a freeze request and thaws the sandbox if it was frozen.
func (sb *sandbox) thaw() error {
	sb.freezeMu.Lock()
	defer sb.freezeMu.Unlock()
	sb.idleFreeze = false
	if !sb.frozen {
		return nil
	}
	if err := sb.cg.thaw(); err != nil {
		return err
	}
	sb.frozen = false
	return nil
}

func newSandboxID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sandboxProcess is the sandbox's top process: the bootstrap (pid 1 of the
// sandbox's pid namespace) or, without isolation, a plain child.
type sandboxProcess struct {
	cmd     *exec.Cmd
	pid     int
	group   bool          // kill the process group (no pid namespace)
	exited  chan struct{} // closed once the process has been reaped
	exitErr error         // cmd.Wait's result, valid after exited
}

func startWaiter(cmd *exec.Cmd, group bool) *sandboxProcess {
	sp := &sandboxProcess{cmd: cmd, pid: cmd.Process.Pid, group: group, exited: make(chan struct{})}
	go func() {
		sp.exitErr = cmd.Wait()
		close(sp.exited)
	}()
	return sp
}

// kill SIGKILLs the whole tree: killing pid 1 of a pid namespace makes the
// kernel kill every other process in it; a plain child is killed with its
// process group. The process itself is signalled through os.Process, which
// does nothing once it has been reaped: by then its pid may be another
// process's (and a sandboxProcess without a cmd has no pid at all).
func (sp *sandboxProcess) kill() {
	if sp.group {
		_ = syscall.Kill(-sp.pid, syscall.SIGKILL)
	}
	if sp.cmd != nil {
		_ = sp.cmd.Process.Kill()
	}
}

// exitDescription words an exit like Lambda ("signal: killed", "exit
// status 2").
func (sp *sandboxProcess) exitDescription() string {
	select {
	case <-sp.exited:
	default:
		return "unknown"
	}
	var ee *exec.ExitError
	if errors.As(sp.exitErr, &ee) {
		return ee.ProcessState.String()
	}
	if sp.exitErr == nil {
		return "exit status 0"
	}
	return sp.exitErr.Error()
}

func (sb *sandbox) exited() <-chan struct{} { return sb.proc.exited }

// destroy tears the sandbox down and returns when every process is reaped,
// the cgroup removed and the log stream closed. Safe to call more than once
// and concurrently; the later calls wait for the first.
func (sb *sandbox) destroy() {
	first := false
	sb.goneOnce.Do(func() { close(sb.gone); first = true })
	if !first {
		<-sb.destroyed
		return
	}
	defer close(sb.destroyed)
	_ = sb.thaw()
	sb.proc.kill()
	select {
	case <-sb.proc.exited:
	case <-time.After(5 * time.Second):
		// A process stuck in the kernel (D state); the cgroup removal
		// below kills anything else left and reports if it cannot.
	}
	if sb.ln != nil {
		sb.ln.Close()
	}
	if sb.cg != nil {
		_ = sb.cg.destroy()
	}
	if sb.logs != nil {
		sb.logs.close()
	}
	for _, release := range sb.codes {
		release()
	}
	sb.owner.release()
}

func (sb *sandbox) String() string {
	return fmt.Sprintf("sandbox %s (%s)", sb.id[:12], sb.fn.FunctionName)
}
