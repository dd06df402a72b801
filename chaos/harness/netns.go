package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
)

// Names of what a namespaced cluster creates. Every name carries the pid
// of the test process so Sweep can tell leftovers of dead runs.
const (
	netnsPrefix   = "stoke-chaos-" // + pid-seq-nI, in /run/netns
	bridgePrefix  = "scb"          // + base36 pid-seq
	vethPrefix    = "scv"          // + base36 pid-seq-i
	chainPrefix   = "STOKE-CHAOS-" // + pid-seq, in the host's filter table
	nodeChain     = "CHAOS"        // inside each node's namespace
	subnetPrefix  = "10.213."
	allocLockPath = "/run/stoke-chaos.lock"
)

var clusterSeq atomic.Int64

// netnsNet runs node i in namespace stoke-chaos-PID-SEQ-nI whose eth0
// (10.213.X.(i+2)/24) is one end of a veth pair; the other end is a port
// of bridge scbTAG, which holds 10.213.X.1 so the test process reaches
// every node. Nodes use the agent's default ports, each on its own stack.
type netnsNet struct {
	seq    string // pid-seq
	tag    string // base36 pid-seq, for 15-byte interface names
	x      int
	n      int
	bridge string
	chain  string
}

func newNetnsNet(ctx context.Context, n int) (_ *netnsNet, err error) {
	pid := os.Getpid()
	seq := clusterSeq.Add(1)
	nn := &netnsNet{
		seq: fmt.Sprintf("%d-%d", pid, seq),
		tag: strconv.FormatInt(int64(pid), 36) + "-" + strconv.FormatInt(seq, 36),
		n:   n,
	}
	nn.bridge = bridgePrefix + nn.tag
	nn.chain = chainPrefix + nn.seq
	defer func() {
		if err != nil {
			_ = nn.Close(context.WithoutCancel(ctx))
		}
	}()

	unlock, err := lockFile(allocLockPath)
	if err != nil {
		return nil, fmt.Errorf("harness: subnet allocation lock: %w", err)
	}
	defer unlock()
	if nn.x, err = freeSubnet(ctx); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"ip", "link", "add", nn.bridge, "type", "bridge"},
		{"ip", "addr", "add", nn.gateway() + "/24", "dev", nn.bridge},
		{"ip", "link", "set", nn.bridge, "up"},
	}
	for i := range n {
		ns, veth := nn.ns(i), nn.veth(i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", veth, "master", nn.bridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", nn.IP(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			nn.inNS(i, "iptables", "-w", "-N", nodeChain),
			nn.inNS(i, "iptables", "-w", "-A", "INPUT", "-j", nodeChain),
		)
	}
	// Bridged frames pass the host's FORWARD chain when br_netfilter is
	// loaded; accept ours whatever the host's policy (Docker sets DROP).
	steps = append(steps,
		[]string{"iptables", "-w", "-N", nn.chain},
		[]string{"iptables", "-w", "-A", nn.chain, "-i", nn.bridge, "-j", "ACCEPT"},
		[]string{"iptables", "-w", "-A", nn.chain, "-o", nn.bridge, "-j", "ACCEPT"},
		[]string{"iptables", "-w", "-I", "FORWARD", "1", "-j", nn.chain},
	)
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("harness: namespace network: %w", err)
		}
	}
	return nn, nil
}

// freeSubnet picks X such that no interface or route uses 10.213.X.0/24.
func freeSubnet(ctx context.Context) (int, error) {
	addrs, err := run(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return 0, err
	}
	routes, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return 0, err
	}
	start := os.Getpid() % 250
	for k := range 250 {
		x := (start+k)%250 + 1
		prefix := fmt.Sprintf("%s%d.", subnetPrefix, x)
		if !strings.Contains(addrs, prefix) && !strings.Contains(routes, prefix) {
			return x, nil
		}
	}
	return 0, errors.New("harness: no free 10.213.X.0/24 subnet")
}

// ns names node i's namespace after its node id (n1 is index 0).
func (nn *netnsNet) ns(i int) string { return fmt.Sprintf("%s%s-n%d", netnsPrefix, nn.seq, i+1) }
func (nn *netnsNet) veth(i int) string {
	return vethPrefix + nn.tag + "-" + strconv.FormatInt(int64(i), 36)
}
func (nn *netnsNet) gateway() string { return fmt.Sprintf("%s%d.1", subnetPrefix, nn.x) }
func (nn *netnsNet) nsPath(i int) string {
	return "/run/netns/" + nn.ns(i)
}

// inNS is the command line that runs a tool inside node i's namespace.
// nsenter enters only the network namespace; `ip netns exec` would also
// remount /sys, hiding the cgroup mounts the agent's sandboxes need.
func (nn *netnsNet) inNS(i int, args ...string) []string {
	return append([]string{"nsenter", "--net=" + nn.nsPath(i), "--"}, args...)
}

func (nn *netnsNet) Mode() NetworkMode { return NetworkNamespaces }
func (nn *netnsNet) IP(i int) string   { return fmt.Sprintf("%s%d.%d", subnetPrefix, nn.x, i+2) }
func (nn *netnsNet) Ports() ports      { return ports{HTTP: 9000, GRPC: 9100, Raft: 9101, Gossip: 7946} }

func (nn *netnsNet) Command(i int, bin string, args ...string) *exec.Cmd {
	argv := nn.inNS(i, append([]string{bin}, args...)...)
	return exec.Command(argv[0], argv[1:]...)
}

func (nn *netnsNet) Drop(ctx context.Context, i int, from []string) error {
	for _, ip := range from {
		if err := nn.iptables(ctx, i, "-A", nodeChain, "-s", ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

func (nn *netnsNet) Loss(ctx context.Context, i int, from []string, p float64) error {
	if p <= 0 || p > 1 {
		return fmt.Errorf("harness: loss probability %v outside (0, 1]", p)
	}
	for _, ip := range from {
		if err := nn.iptables(ctx, i, "-A", nodeChain, "-s", ip, "-m", "statistic", "--mode", "random",
			"--probability", strconv.FormatFloat(p, 'f', 4, 64), "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

func (nn *netnsNet) ClearFilters(ctx context.Context, i int) error {
	return nn.iptables(ctx, i, "-F", nodeChain)
}

func (nn *netnsNet) iptables(ctx context.Context, i int, args ...string) error {
	argv := nn.inNS(i, append([]string{"iptables", "-w"}, args...)...)
	_, err := run(ctx, argv[0], argv[1:]...)
	return err
}

func (nn *netnsNet) Netem(ctx context.Context, i int, args ...string) error {
	argv := nn.inNS(i, append([]string{"tc", "qdisc", "replace", "dev", "eth0", "root", "netem"}, args...)...)
	if _, err := run(ctx, argv[0], argv[1:]...); err != nil {
		if strings.Contains(err.Error(), "qdisc kind is unknown") {
			return fmt.Errorf("%w: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): %v", ErrUnsupported, err)
		}
		return err
	}
	return nil
}

func (nn *netnsNet) ClearNetem(ctx context.Context, i int) error {
	argv := nn.inNS(i, "tc", "qdisc", "del", "dev", "eth0", "root")
	if out, err := run(ctx, argv[0], argv[1:]...); err != nil && !strings.Contains(out, "No such file") &&
		!strings.Contains(out, "Cannot delete qdisc with handle of zero") {
		return err
	}
	return nil
}

// Close deletes the veth pairs, the namespaces (their rules and qdiscs go
// with them), the bridge and the host chain. It tries every step and
// returns the errors of those that failed for another reason than absence.
//
// The veths are deleted explicitly first: a namespace outlives `ip netns
// del` while anything still references it, such as a TCP socket a killed
// agent left retransmitting its FIN, and its veth would linger with it.
// Deleting one end of a pair deletes both, wherever the other end is.
func (nn *netnsNet) Close(ctx context.Context) error {
	var errs []error
	for i := range nn.n {
		if _, err := run(ctx, "ip", "link", "show", nn.veth(i)); err == nil {
			if _, err := run(ctx, "ip", "link", "del", nn.veth(i)); err != nil {
				errs = append(errs, err)
			}
		}
		if _, err := os.Stat(nn.nsPath(i)); err == nil {
			if _, err := run(ctx, "ip", "netns", "del", nn.ns(i)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := run(ctx, "ip", "link", "show", nn.bridge); err == nil {
		if _, err := run(ctx, "ip", "link", "del", nn.bridge); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, removeChain(ctx, nn.chain))
	return errors.Join(errs...)
}

// removeChain unhooks a host chain from FORWARD, INPUT and OUTPUT and
// deletes it; a chain that does not exist is not an error.
func removeChain(ctx context.Context, chain string) error {
	if _, err := run(ctx, "iptables", "-w", "-n", "-L", chain); err != nil {
		return nil
	}
	for _, hook := range []string{"FORWARD", "INPUT", "OUTPUT"} {
		for {
			if _, err := run(ctx, "iptables", "-w", "-D", hook, "-j", chain); err != nil {
				break
			}
		}
	}
	if _, err := run(ctx, "iptables", "-w", "-F", chain); err != nil {
		return err
	}
	_, err := run(ctx, "iptables", "-w", "-X", chain)
	return err
}

var _ filterNet = (*netnsNet)(nil)
