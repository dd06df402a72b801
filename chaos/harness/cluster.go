package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/node"
)

// Cluster is a running set of agents started by Start. It is torn down by
// Close, which Start registers with t.Cleanup.
type Cluster struct {
	t      testing.TB
	cfg    Config
	binary string
	dir    string
	net    network
	nodes  []*Node
	// keyFile is the cluster key every node shares.
	keyFile string
	creds   node.Credentials
	mounts  []string
	http    *http.Client

	closeOnce sync.Once
	closeErr  error
}

// Start creates the run directory, the network and one agent per node,
// and returns once the cluster has a leader every node follows and the
// first leader has written the admin credentials. It fails the test on
// any error; everything created so far is removed.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := start(t, cfg)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return c
}

func start(t testing.TB, cfg Config) (_ *Cluster, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	installSignalHandler()
	sweepOnce(t)
	c := &Cluster{t: t, cfg: cfg, http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("harness: cleanup: %v", err)
		}
	})
	register(c)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ReadyTimeout)
	defer cancel()

	if c.binary = cfg.Binary; c.binary == "" {
		if c.binary, err = Binary(); err != nil {
			return nil, err
		}
	}
	if c.dir, err = os.MkdirTemp("", fmt.Sprintf("stoke-chaos-%d-", os.Getpid())); err != nil {
		return nil, err
	}
	n := cfg.Servers + cfg.Workers
	if c.net, err = newNetwork(ctx, cfg.Network, n); err != nil {
		return nil, err
	}
	c.keyFile = filepath.Join(c.dir, "cluster.key")
	key, err := exec.CommandContext(ctx, c.binary, "keygen").Output()
	if err != nil {
		return nil, fmt.Errorf("stoke keygen: %w", err)
	}
	if err := os.WriteFile(c.keyFile, key, 0o600); err != nil {
		return nil, err
	}
	for i := range n {
		nd := &Node{ID: fmt.Sprintf("n%d", i+1), Index: i, Server: i < cfg.Servers, IP: c.net.IP(i), c: c,
			DataDir: filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), LogPath: filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1))}
		if err := os.MkdirAll(nd.DataDir, 0o700); err != nil {
			return nil, err
		}
		if cfg.DataDiskMB > 0 {
			if err := c.mountDataDisk(nd.DataDir, cfg.DataDiskMB); err != nil {
				return nil, err
			}
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		if err := nd.Start(); err != nil {
			return nil, err
		}
	}
	t.Logf("harness: %d servers + %d workers on %s network (%s), run dir %s", cfg.Servers, cfg.Workers, c.net.Mode(), c.net.IP(0), c.dir)
	if err := c.WaitReady(ctx); err != nil {
		return nil, fmt.Errorf("cluster did not form within %v: %w", cfg.ReadyTimeout, err)
	}
	if err := Poll(ctx, 100*time.Millisecond, func() error { return c.findCredentials(ctx) }); err != nil {
		return nil, err
	}
	return c, nil
}

func newNetwork(ctx context.Context, mode NetworkMode, n int) (network, error) {
	if mode == NetworkAuto {
		mode = NetworkLoopback
		if ok, _ := CanNamespace(); ok {
			mode = NetworkNamespaces
		}
	}
	if mode == NetworkNamespaces {
		if ok, why := CanNamespace(); !ok {
			return nil, fmt.Errorf("%w: namespaces need %s", ErrUnsupported, why)
		}
		return newNetnsNet(ctx, n)
	}
	return newLoopbackNet()
}

// Nodes returns every node, servers first.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Others returns every node of the cluster but the given ones, in order
// (a new slice): the survivors of a fault, the other side of a partition.
func (c *Cluster) Others(drop ...*Node) []*Node {
	var rest []*Node
	for _, n := range c.nodes {
		if !slices.Contains(drop, n) {
			rest = append(rest, n)
		}
	}
	return rest
}

// Servers returns the Raft voters; Workers the others. Like Nodes, each
// returns a new slice: appending to the servers must not overwrite the
// first worker in the cluster's own list.
func (c *Cluster) Servers() []*Node { return slices.Clone(c.nodes[:c.cfg.Servers]) }
func (c *Cluster) Workers() []*Node { return slices.Clone(c.nodes[c.cfg.Servers:]) }

// Node returns the node with this id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Credentials are the admin credentials the first leader created.
func (c *Cluster) Credentials() node.Credentials { return c.creds }

// Dir is the run directory: data dirs, logs and artifacts.
func (c *Cluster) Dir() string { return c.dir }

// ArtifactDir is where checkers write what explains a failure.
func (c *Cluster) ArtifactDir() string { return filepath.Join(c.dir, "artifacts") }

// NetworkMode is the network the cluster runs on.
func (c *Cluster) NetworkMode() NetworkMode { return c.net.Mode() }

// Status is what a node's /ready endpoint reports.
type Status struct {
	Ready        bool   `json:"ready"`
	Leader       string `json:"leader"`
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
}

// Status asks n for its Raft view (unauthenticated /ready, 2 s timeout).
func (c *Cluster) Status(ctx context.Context, n *Node) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Endpoint()+"/ready", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("%s /ready: %w", n.ID, err)
	}
	return st, nil
}

// Leader returns the node among the given ones (default: every node that
// is serving) that reports itself leader and that all the others follow.
// It looks once; WaitLeader waits for one.
func (c *Cluster) Leader(ctx context.Context, among ...*Node) (*Node, error) {
	if len(among) == 0 {
		for _, n := range c.nodes {
			if n.Serving() {
				among = append(among, n)
			}
		}
	}
	var leader *Node
	views := map[string]string{}
	for _, n := range among {
		st, err := c.Status(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		views[n.ID] = st.Leader
		if st.State == "Leader" {
			if leader != nil {
				return nil, fmt.Errorf("both %s and %s claim leadership", leader.ID, n.ID)
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("no leader among %v (they follow %v)", among, views)
	}
	for id, l := range views {
		if l != leader.ID {
			return nil, fmt.Errorf("%s follows %q, not %s", id, l, leader.ID)
		}
	}
	return leader, nil
}

// WaitLeader waits until Leader(among...) succeeds.
func (c *Cluster) WaitLeader(ctx context.Context, among ...*Node) (*Node, error) {
	var leader *Node
	err := Poll(ctx, 100*time.Millisecond, func() (err error) {
		leader, err = c.Leader(ctx, among...)
		return err
	})
	return leader, err
}

// WaitReady waits until every serving node reports ready (it knows the
// leader and has applied what it heard was committed) and all follow the
// same leader.
func (c *Cluster) WaitReady(ctx context.Context) error {
	return Poll(ctx, 100*time.Millisecond, func() error {
		if _, err := c.Leader(ctx); err != nil {
			return err
		}
		for _, n := range c.nodes {
			if !n.Serving() {
				continue
			}
			if st, err := c.Status(ctx, n); err != nil || !st.Ready {
				return fmt.Errorf("%s not ready: %+v %v", n.ID, st, err)
			}
		}
		return nil
	})
}

// Close kills every agent, removes the network and mounts, and removes the
// run directory unless the test failed or KeepDir is set; then it logs
// where the data and logs are, with the tail of each node's log.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		defer unregister(c)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		for _, n := range c.nodes {
			errs = append(errs, n.Kill())
		}
		if c.net != nil {
			errs = append(errs, c.net.Close(ctx))
		}
		errs = append(errs, c.unmountAll())
		c.http.CloseIdleConnections()
		c.closeErr = errors.Join(errs...)
		if c.dir == "" {
			return
		}
		if c.t.Failed() || c.cfg.KeepDir || c.closeErr != nil {
			c.logTails()
			c.t.Logf("harness: run directory kept: %s", c.dir)
			return
		}
		if err := os.RemoveAll(c.dir); err != nil {
			c.closeErr = errors.Join(c.closeErr, err)
		}
	})
	return c.closeErr
}

func (c *Cluster) logTails() {
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		lines = lines[max(0, len(lines)-15):]
		c.t.Logf("harness: last lines of %s:\n%s", n.LogPath, strings.Join(lines, "\n"))
	}
}

// Poll calls cond every interval until it returns nil or ctx ends; then it
// returns cond's last error. It is how the harness waits for another
// process to reach a state: there is no event to wait on across processes.
func Poll(ctx context.Context, interval time.Duration, cond func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
