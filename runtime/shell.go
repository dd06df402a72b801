package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A shell is an empty sandbox: the init process already runs in its new
// namespaces, sits in its cgroup and has its Runtime API listener bound in
// its network namespace; it waits on its control socket for the code to
// mount and the bootstrap to exec. Creating a shell costs a re-exec of the
// agent binary, namespace and cgroup creation and the netns listener; the
// pool keeps a few ready so a cold start pays only for mounts and exec.
type shell struct {
	id   string
	proc *sandboxProcess
	ctrl *os.File // agent end of the control socket
	out  *os.File // read end of the sandbox's stdout+stderr pipe
	cg   sandboxCgroup
	ln   net.Listener
	// userNS: ids are mapped through a user namespace, owned by owner.
	userNS bool
	owner  *nsOwner
}

// spawnConfig is what shells need from the pool.
type spawnConfig struct {
	cgroups    cgroupManager
	hostIDBase uint32
	owners     *ownerIDs // owners of the sandboxes' user namespaces
	system     []systemEntry
	timeout    time.Duration // for the init to build its root
}

// sandboxIDs returns the uid and gid function code runs as, as seen inside
// the sandbox: Lambda's 993/990 through the user namespace, or their
// offsets in the host range without one.
func (sc spawnConfig) sandboxIDs(userNS bool) (uid, gid int) {
	if userNS {
		return sandboxUID, sandboxGID
	}
	return int(sc.hostIDBase) + sandboxUID, int(sc.hostIDBase) + sandboxGID
}

// newShell creates one shell. userNS chooses whether to use a user
// namespace; the pool falls back to false if the kernel refuses.
func newShell(sc spawnConfig, userNS bool) (_ *shell, err error) {
	sh := &shell{id: newSandboxID(), userNS: userNS}
	// Our end is non-blocking so that os.NewFile makes it pollable (read
	// deadlines); the init's end must block.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := unix.SetNonblock(fds[1], false); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, err
	}
	sh.ctrl = os.NewFile(uintptr(fds[0]), "sandbox-ctrl")
	childCtrl := os.NewFile(uintptr(fds[1]), "sandbox-ctrl-child")
	defer childCtrl.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		sh.ctrl.Close()
		return nil, err
	}
	sh.out = outR
	defer outW.Close()
	defer func() {
		if err != nil {
			sh.discard()
		}
	}()

	sh.cg, err = sc.cgroups.create(sh.id)
	if err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"stoke-sandbox-init"},
		Env:        []string{initEnvVar + "=" + initEnvValue},
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: []*os.File{childCtrl}, // becomes fd 3 (initCtrlFD)
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC |
				syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
			// A session of its own, with no controlling terminal: in the
			// agent's session, a function could open /dev/tty as the
			// terminal the agent was started from and type into it.
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	start := cmd.Start
	if userNS {
		if sh.owner, err = sc.owners.alloc(); err != nil {
			return nil, err
		}
		start = func() error { return startAsOwner(cmd, sh.owner.uid()) }
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		base := int(sc.hostIDBase)
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 1000}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 1000}}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// Become the namespace's root, which is host uid base, not host root.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start sandbox init: %w", err)
	}
	sh.proc = startWaiter(cmd, false)
	if err := sh.cg.addProc(sh.proc.pid); err != nil {
		return nil, fmt.Errorf("join cgroup: %w", err)
	}
	sh.ln, err = setupSandboxNetwork(sh.proc.pid)
	if err != nil {
		return nil, fmt.Errorf("sandbox network: %w", err)
	}
	uid, gid := sc.sandboxIDs(userNS)
	if err := sh.send(rootConfig{System: sc.system, EtcFiles: etcFiles(uid, gid)}, nil); err != nil {
		return nil, err
	}
	reply, err := sh.receive(sc.timeout)
	if err != nil {
		return nil, fmt.Errorf("building the sandbox root: %w", err)
	}
	if reply != shellReady {
		return nil, fmt.Errorf("building the sandbox root: %s", reply)
	}
	return sh, nil
}

// send writes one control message with optional descriptors.
func (sh *shell) send(v any, fds []int) error {
	msg, err := json.Marshal(v)
	if err != nil {
		return err
	}
	rc, err := sh.ctrl.SyscallConn()
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	var sendErr error
	if err := rc.Write(func(fd uintptr) bool {
		sendErr = unix.Sendmsg(int(fd), msg, oob, nil, 0)
		return !errors.Is(sendErr, unix.EAGAIN)
	}); err != nil {
		return fmt.Errorf("%w: send to init: %w", ErrSandboxStart, err)
	}
	if sendErr != nil {
		return fmt.Errorf("%w: send to init: %w", ErrSandboxStart, sendErr)
	}
	return nil
}

// receive reads one message from the init; io.EOF means the init exec'd
// (or died).
func (sh *shell) receive(timeout time.Duration) (string, error) {
	_ = sh.ctrl.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	n, err := sh.ctrl.Read(buf)
	if n > 0 {
		return string(buf[:n]), nil
	}
	return "", err
}

// discard kills a shell that will not be used.
func (sh *shell) discard() {
	if sh.proc != nil {
		sh.proc.kill()
		<-sh.proc.exited
	}
	if sh.ln != nil {
		sh.ln.Close()
	}
	if sh.cg != nil {
		_ = sh.cg.destroy()
	}
	if sh.ctrl != nil {
		sh.ctrl.Close()
	}
	if sh.out != nil {
		sh.out.Close()
	}
	sh.owner.release()
}

// errFunctionStart marks a launch failure that is the function's fault
// (no bootstrap, not executable): the caller turns it into an Unhandled
// result rather than a platform error.
var errFunctionStart = errors.New("function failed to start")

// launch sends the init its configuration and the detached mount trees,
// and waits until the bootstrap has been executed (the control socket
// closes on exec) or the init reports why it could not.
func (sh *shell) launch(cfg initConfig, fds []int, timeout time.Duration) error {
	if err := sh.send(cfg, fds); err != nil {
		return err
	}
	text, err := sh.receive(timeout)
	sh.ctrl.Close()
	sh.ctrl = nil
	if text != "" {
		if msg, ok := strings.CutPrefix(text, initFunctionFault); ok {
			return fmt.Errorf("%w: %s", errFunctionStart, msg)
		}
		return fmt.Errorf("%w: %s", ErrSandboxStart, text)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: waiting for exec: %w", ErrSandboxStart, err)
	}
	return nil
}

// shellPool keeps up to size shells ready, refilled by one goroutine.
type shellPool struct {
	sc     spawnConfig
	size   int
	userNS bool
	log    func(msg string, args ...any)

	ready  chan *shell
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newShellPool(sc spawnConfig, size int, userNS bool, log func(string, ...any)) *shellPool {
	ctx, cancel := context.WithCancel(context.Background())
	sp := &shellPool{sc: sc, size: size, userNS: userNS, log: log,
		ready: make(chan *shell, max(size, 1)), wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	if size > 0 {
		sp.wg.Add(1)
		go sp.refill()
	}
	return sp
}

// get returns a ready shell, or creates one on the spot.
func (sp *shellPool) get() (*shell, error) {
	select {
	case sh := <-sp.ready:
		sp.poke()
		return sh, nil
	default:
	}
	sp.poke()
	return newShell(sp.sc, sp.userNS)
}

func (sp *shellPool) poke() {
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

func (sp *shellPool) readyCount() int { return len(sp.ready) }

func (sp *shellPool) refill() {
	defer sp.wg.Done()
	backoff := 10 * time.Millisecond
	for {
		for len(sp.ready) < sp.size {
			if sp.ctx.Err() != nil {
				return
			}
			sh, err := newShell(sp.sc, sp.userNS)
			if err != nil {
				sp.log("creating a sandbox shell failed", "err", err, "retry_in", backoff)
				select {
				case <-sp.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
			select {
			case sp.ready <- sh:
			default:
				sh.discard()
			}
		}
		select {
		case <-sp.ctx.Done():
			return
		case <-sp.wake:
		}
	}
}

// close stops the refiller and discards every ready shell.
func (sp *shellPool) close() {
	sp.cancel()
	sp.wg.Wait()
	for {
		select {
		case sh := <-sp.ready:
			sh.discard()
		default:
			return
		}
	}
}
