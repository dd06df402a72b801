package harness

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Node is one agent of a Cluster. Its methods are safe for concurrent use;
// faults and the scenario may act on a node at the same time.
type Node struct {
	// ID is the node id ("n1", "n2", ...), also its Raft and gossip name.
	ID string
	// Index is the node's position in Cluster.Nodes.
	Index int
	// Server is true for Raft voters.
	Server bool
	// IP is the node's own address; every listener binds it.
	IP string
	// DataDir holds the node's state; LogPath collects the output of every
	// run of its agent.
	DataDir string
	LogPath string

	c      *Cluster
	mu     sync.Mutex
	proc   *process
	paused bool
	runs   int
}

func (n *Node) String() string { return n.ID }

func (n *Node) addr(port int) string { return net.JoinHostPort(n.IP, strconv.Itoa(port)) }

// HTTPAddr is the Lambda API's host:port; Endpoint the URL clients use.
func (n *Node) HTTPAddr() string   { return n.addr(n.c.net.Ports().HTTP) }
func (n *Node) Endpoint() string   { return "http://" + n.HTTPAddr() }
func (n *Node) GossipAddr() string { return n.addr(n.c.net.Ports().Gossip) }
func (n *Node) RaftAddr() string   { return n.addr(n.c.net.Ports().Raft) }
func (n *Node) GRPCAddr() string   { return n.addr(n.c.net.Ports().GRPC) }

func (n *Node) args() []string {
	p := n.c.net.Ports()
	a := []string{"agent", "--node-id", n.ID, "--data-dir", n.DataDir, "--cluster-key-file", n.c.keyFile,
		"--http-addr", n.HTTPAddr(), "--grpc-addr", n.GRPCAddr(), "--raft-addr", n.RaftAddr(),
		"--gossip-addr", n.GossipAddr(), "--log-level", n.c.cfg.LogLevel, "--reap-timeout", "10m"}
	if n.Server {
		a = append(a, "--server", "--bootstrap-expect", strconv.Itoa(n.c.cfg.Servers))
	}
	if !IsRoot() {
		// Sandboxes need root (namespaces, cgroups); without it the agent
		// runs function code as plain processes.
		a = append(a, "--insecure-no-sandbox")
	}
	for _, s := range n.c.Servers() {
		if s != n {
			a = append(a, "--join", net.JoinHostPort(s.IP, strconv.Itoa(p.Gossip)))
		}
	}
	return append(a, n.c.cfg.ExtraArgs...)
}

// Start starts the node's agent; it fails if the agent is running.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("harness: %s is already running (pid %d)", n.ID, n.proc.pid())
	}
	n.runs++
	cmd := n.c.net.Command(n.Index, n.c.binary, n.args()...)
	p, err := startProcess(cmd, n.LogPath, fmt.Sprintf("run %d of %s: %v", n.runs, n.ID, cmd.Args))
	if err != nil {
		return fmt.Errorf("harness: start %s: %w", n.ID, err)
	}
	n.proc, n.paused = p, false
	return nil
}

// Kill sends SIGKILL to the node's agent (and everything it spawned) and
// waits until it has exited. Killing a stopped node is not an error.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	err := n.proc.kill(10 * time.Second)
	n.paused = false
	return err
}

// Stop sends SIGTERM (a graceful restart from the cluster's point of
// view) and waits up to timeout before resorting to SIGKILL.
func (n *Node) Stop(timeout time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return nil
	}
	if n.paused {
		_ = n.proc.signalGroup(syscall.SIGCONT)
		n.paused = false
	}
	if err := n.proc.signalGroup(syscall.SIGTERM); err != nil {
		return err
	}
	if n.proc.wait(timeout) == nil {
		return nil
	}
	return n.proc.kill(10 * time.Second)
}

// Restart kills the node if it runs and starts it again from its data dir.
func (n *Node) Restart() error {
	if err := n.Kill(); err != nil {
		return err
	}
	return n.Start()
}

// Pause freezes the node's processes with SIGSTOP; Resume thaws them.
func (n *Node) Pause() error  { return n.setPaused(true) }
func (n *Node) Resume() error { return n.setPaused(false) }

func (n *Node) setPaused(pause bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return fmt.Errorf("harness: %s is not running", n.ID)
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := n.proc.signalGroup(sig); err != nil {
		return err
	}
	n.paused = pause
	return nil
}

// Running reports whether the agent process is alive (paused counts).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Paused reports whether the node is stopped with SIGSTOP.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused && n.proc != nil && !n.proc.exited()
}

// Serving reports whether the node runs and is not paused: whether it can
// answer requests at all.
func (n *Node) Serving() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited() && !n.paused
}

// ExitErr is the last run's exit status once it has exited.
func (n *Node) ExitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return errors.New("never started")
	}
	if !n.proc.exited() {
		return nil
	}
	return n.proc.err
}

// PID is the agent's pid (0 if it never started).
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.pid()
}
