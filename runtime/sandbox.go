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
