package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
)

// ports are the listen ports every node of a cluster uses on its own IP.
type ports struct{ HTTP, GRPC, Raft, Gossip int }

// network places nodes on addresses and runs their processes there.
type network interface {
	Mode() NetworkMode
	// IP is node i's address (0-based index).
	IP(i int) string
	Ports() ports
	// Command returns the command that runs bin with args as node i.
	Command(i int, bin string, args ...string) *exec.Cmd
	// Close removes everything the network created. Node processes must
	// have exited.
	Close(ctx context.Context) error
}

// filterNet is a network that can filter and shape each node's packets.
type filterNet interface {
	network
	// Drop makes node i drop every packet from the given addresses.
	Drop(ctx context.Context, i int, from []string) error
	// Loss makes node i drop a share p of the packets from the given
	// addresses.
	Loss(ctx context.Context, i int, from []string, p float64) error
	// ClearFilters removes node i's drop and loss rules.
	ClearFilters(ctx context.Context, i int) error
	// Netem applies a tc netem qdisc (tc arguments after "netem") to the
	// packets node i sends; ClearNetem removes it.
	Netem(ctx context.Context, i int, args ...string) error
	ClearNetem(ctx context.Context, i int) error
}

// loopbackNet binds node i to 127.213.X.(i+2). A listener on 127.213.X.1
// claims the /24 for this cluster, so concurrent runs pick different ones.
// Ports are uncommon ones, since an agent elsewhere on the machine may hold
// the defaults on 0.0.0.0, which would collide with any loopback address.
type loopbackNet struct {
	x     int
	claim net.Listener
}

func newLoopbackNet() (*loopbackNet, error) {
	start := os.Getpid() % 250
	for k := range 250 {
		x := (start+k)%250 + 1
		ln, err := net.Listen("tcp", fmt.Sprintf("127.213.%d.1:19999", x))
		if err == nil {
			return &loopbackNet{x: x, claim: ln}, nil
		}
	}
	return nil, fmt.Errorf("harness: no free 127.213.X.0/24 on loopback")
}

func (l *loopbackNet) Mode() NetworkMode { return NetworkLoopback }
func (l *loopbackNet) IP(i int) string {
	return "127.213." + strconv.Itoa(l.x) + "." + strconv.Itoa(i+2)
}
func (l *loopbackNet) Ports() ports {
	return ports{HTTP: 19000, GRPC: 19100, Raft: 19101, Gossip: 17946}
}
func (l *loopbackNet) Command(_ int, bin string, args ...string) *exec.Cmd {
	return exec.Command(bin, args...)
}
func (l *loopbackNet) Close(context.Context) error { return l.claim.Close() }
