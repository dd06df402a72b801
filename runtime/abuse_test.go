package runtime

// Tests of what a hostile function tries against the node: reaching a
// terminal of the host, descriptors the agent inherited, refused kernel
// interfaces, per-user kernel budgets. Several run the agent as a
// subprocess (this test binary re-executed as TestAgentSubprocess) so that
// it can be started the way an operator might start it: from a terminal,
// or with extra descriptors.

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment of an agent subprocess: where it writes the function's
// answer, the event it invokes gofn with, and gofn's code tree.
const (
	agentResultEnv = "STOKE_TEST_AGENT_RESULT"
	agentEventEnv  = "STOKE_TEST_AGENT_EVENT"
	agentCodeEnv   = "STOKE_TEST_AGENT_CODE"
)

// TestAgentSubprocess is not a test of its own: runAgentSubprocess runs it
// in a child process as an agent that invokes gofn once.
func TestAgentSubprocess(t *testing.T) {
	out := os.Getenv(agentResultEnv)
	if out == "" {
		t.Skip("runs only as the agent subprocess of other tests")
	}
	p := newTestPool(t, map[string]string{"go": os.Getenv(agentCodeEnv)})
	res := invoke(t, p, goSpec("subprocess"), json.RawMessage(os.Getenv(agentEventEnv)))
	if res.FunctionError != "" {
		t.Fatalf("function error: %s\nlog tail:\n%s", res.Payload, res.LogTail)
	}
	if err := os.WriteFile(out, res.Payload, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runAgentSubprocess runs this test binary as an agent (TestAgentSubprocess)
// that invokes gofn once with event, and returns the function's answer.
// setup may give the agent other standard streams, descriptors or a
// session; by default its output is kept for the failure message.
func runAgentSubprocess(t *testing.T, event any, setup func(*exec.Cmd)) json.RawMessage {
	t.Helper()
	requireRoot(t)
	ev, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result.json")
	var output bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestAgentSubprocess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), agentResultEnv+"="+result, agentEventEnv+"="+string(ev), agentCodeEnv+"="+goFunction(t))
	cmd.Stdout, cmd.Stderr = &output, &output
	setup(cmd)
	if err := cmd.Run(); err != nil {
		t.Fatalf("agent subprocess: %v\n%s", err, output.String())
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("agent subprocess wrote no result: %v\n%s", err, output.String())
	}
	return b
}

// openPTY returns the master and the slave of a new pseudo-terminal, neither
// the controlling terminal of this process. The master is non-blocking, so
// that closing it ends a Read in another goroutine.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("ptsname: %v", err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() {
		master.Close()
		slave.Close()
	})
	return master, slave
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSandboxHasNoTerminal: a function has no controlling terminal and no
// /dev/tty, its process is the leader of its own session, and TIOCSTI and
// TIOCLINUX are refused by seccomp on every descriptor in both the plain
// and the high-bit form of the command.
func TestSandboxHasNoTerminal(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	got := decode[map[string]string](t, invoke(t, p, goSpec("terminal"), map[string]string{"op": "terminal"}))
	checkNoTerminal(t, got)
}

// checkNoTerminal judges gofn's terminal probe.
func checkNoTerminal(t *testing.T, got map[string]string) {
	t.Helper()
	if got["open /dev/tty"] != "ENOENT" {
		t.Errorf("open /dev/tty: %s, want ENOENT (no /dev/tty in the sandbox)", got["open /dev/tty"])
	}
	// The bootstrap is pid 1 of its pid namespace; a session started
	// outside the namespace would read as 0.
	if got["session"] != "1" || got["tty_nr"] != "0" {
		t.Errorf("session %s, controlling tty %s; want the bootstrap's own session (1) and no terminal (0)", got["session"], got["tty_nr"])
	}
	probes := 0
	for k, errno := range got {
		if k == "open /dev/tty" || k == "session" || k == "tty_nr" {
			continue
		}
		probes++
		if errno != "EPERM" {
			t.Errorf("ioctl %s: %s, want EPERM from seccomp", k, errno)
		}
	}
	if probes < 12 {
		t.Errorf("only %d ioctl probes in %v", probes, got)
	}
}

// TestSandboxCannotTypeIntoAgentTerminal starts the agent the way `make
// run` does, with a terminal as its standard streams and controlling
// terminal, and has a function try to type into every terminal it can
// reach. Nothing may arrive in the terminal's input queue.
func TestSandboxCannotTypeIntoAgentTerminal(t *testing.T) {
	requireRoot(t)
	master, slave := openPTY(t)
	// Non-canonical input, so that the queue counts every byte, not only
	// whole lines; no echo, so the agent's output is all the master reads.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	var transcript syncBuffer
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(&transcript, master)
	}()
	defer func() {
		master.Close()
		<-drained
	}()

	payload := runAgentSubprocess(t, map[string]string{"op": "terminal"}, func(cmd *exec.Cmd) {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	})
	var got map[string]string
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("decode %q: %v", payload, err)
	}
	queued, err := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		typed := make([]byte, queued)
		n, _ := slave.Read(typed)
		t.Errorf("the function typed %q into the agent's terminal (probe: %v)", typed[:n], got)
	}
	checkNoTerminal(t, got)
	if t.Failed() {
		t.Logf("agent output:\n%s", transcript.String())
	}
}

// TestSandboxSeesOnlyStdio: a descriptor the agent holds without
// close-on-exec (here a directory of the host opened by this test after
// start) is not open in the function: the sandbox init closes all but 0-2
// at exec.
func TestSandboxSeesOnlyStdio(t *testing.T) {
	code := goFunction(t) // built before the descriptor exists: go build must not get it
	requireRoot(t)
	fd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0) // no O_CLOEXEC, on purpose
	if err != nil {
		t.Fatal(err)
	}
	// Registered before newTestPool's cleanup, so it runs after the pool
	// is closed.
	t.Cleanup(func() { unix.Close(fd) })
	p := newTestPool(t, map[string]string{"go": code})
	got := decode[map[string]string](t, invoke(t, p, goSpec("fds"), map[string]string{"op": "fds"}))
	checkOnlyStdio(t, got)
}

// TestSandboxSeesOnlyStdioWhenAgentInheritsDirectory starts the agent with
// an extra inherited directory descriptor (as a shell's `7</tmp` would) and
// checks the function does not get it.
func TestSandboxSeesOnlyStdioWhenAgentInheritsDirectory(t *testing.T) {
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	payload := runAgentSubprocess(t, map[string]string{"op": "fds"}, func(cmd *exec.Cmd) {
		// fd 7 in the agent, without close-on-exec. Not fd 3: the init's
		// control socket is put there and would hide it.
		cmd.ExtraFiles = []*os.File{nil, nil, nil, nil, dir}
	})
	var got map[string]string
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("decode %q: %v", payload, err)
	}
	checkOnlyStdio(t, got)
}

// checkOnlyStdio judges gofn's list of the descriptors it started with.
func checkOnlyStdio(t *testing.T, got map[string]string) {
	t.Helper()
	var fds []string
	for fd := range got {
		fds = append(fds, fd)
	}
	slices.Sort(fds)
	if !slices.Equal(fds, []string{"0", "1", "2"}) {
		t.Errorf("the function started with descriptors %v, want only 0, 1, 2", got)
	}
}

// TestCloseOnExecFrom: a descriptor opened without close-on-exec is marked,
// not closed (F_GETFD would fail on a closed one).
func TestCloseOnExecFrom(t *testing.T) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := closeOnExecFrom(fd); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d flags %#x: not close-on-exec", fd, flags)
	}
}

// TestSandboxInotifyBudgetIsPerSandbox: a function that takes every inotify
// instance it can gets its own sandbox's budget (the host's per-user
// limit), and host root and another tenant can still create instances.
// Before, every sandbox's namespace was owned by root and all of them,
// with host root, shared one budget.
func TestSandboxInotifyBudgetIsPerSandbox(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	if !p.userNS {
		t.Skip("without a user namespace every sandbox runs as one host uid and shares its inotify budget")
	}
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		t.Skip(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	type held struct {
		Created int
		Err     string
	}
	hog := decode[held](t, invoke(t, p, goSpec("inotify-hog"), map[string]any{"op": "inotify", "n": limit + 10}))
	if hog.Created != limit || hog.Err != "EMFILE" {
		t.Errorf("the hog created %d instances and stopped with %q; want its own full budget, %d, then EMFILE", hog.Created, hog.Err, limit)
	}
	// The hog's sandbox is idle now, still holding them.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Errorf("host root cannot create an inotify instance while a function holds %d: %v", hog.Created, err)
	} else {
		unix.Close(fd)
	}
	other := decode[held](t, invoke(t, p, goSpec("inotify-other"), map[string]any{"op": "inotify", "n": 1}))
	if other.Created != 1 {
		t.Errorf("another function cannot create an inotify instance while one holds %d: %q", hog.Created, other.Err)
	}
}

// TestNamespaceOwnersCycle: owner ids are handed out round the whole range
// before one is reused, never twice at once, and a double release frees
// only once.
func TestNamespaceOwnersCycle(t *testing.T) {
	ids := newOwnerIDs(1000)
	a, err := ids.alloc()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ids.alloc()
	if a.uid() != 2000 || b.uid() != 2001 {
		t.Fatalf("first owners %d, %d; want 2000, 2001", a.uid(), b.uid())
	}
	a.release()
	c, _ := ids.alloc()
	if c.uid() != 2002 {
		t.Errorf("after a release, got %d; want 2002 (no early reuse)", c.uid())
	}
	ids.next = 0 // wrap around: slot 0 is free, 1 and 2 are not
	d, _ := ids.alloc()
	e, _ := ids.alloc()
	if d.uid() != 2000 || e.uid() != 2003 {
		t.Errorf("after wrapping, got %d, %d; want 2000, 2003 (skipping owners in use)", d.uid(), e.uid())
	}
	a.release() // a's slot is d's now: a second release of a must not free it
	ids.next = 0
	if f, _ := ids.alloc(); f.uid() == d.uid() {
		t.Errorf("owner %d handed out twice", f.uid())
	}
}
