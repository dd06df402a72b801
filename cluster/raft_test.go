package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

const account = "123456789012"

func createAccount(t *testing.T, c *clustertest.RaftCluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Apply(ctx, &fsmpb.CreateAccountCmd{Header: &fsmpb.Header{RequestId: "acct"},
		Account: &fsmpb.Account{Id: account, ConcurrencyLimit: 1000, UnreservedMinimum: 100}})
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
}

func createFunctionCmd(name string) *fsmpb.CreateFunctionCmd {
	return &fsmpb.CreateFunctionCmd{
		Header: &fsmpb.Header{AccountId: account, RequestId: "create-" + name},
		Name:   name,
		Config: &fsmpb.FunctionConfig{Runtime: "python3.11", Handler: "a.b", MemoryMb: 128, TimeoutS: 3,
			EphemeralMb: 512, CodeSha256: "sha", BlobId: "blob"},
	}
}

func TestSingleNodeBootstrapAppliesAndReads(t *testing.T) {
	c := clustertest.NewRaftCluster(t, 1, nil)
	createAccount(t, c)
	leader := c.Leader()
	ctx := context.Background()
	res, err := leader.Raft().Apply(ctx, createFunctionCmd("fn"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Function.GetRevisionId() == "" {
		t.Fatalf("result carries no revision id: %v", res)
	}
	if fn := leader.Raft().Store().View().Function(account, "fn"); fn == nil || fn.LastModifiedUnixNano == 0 {
		t.Fatalf("function not in the replica, or not time-stamped by the leader: %v", fn)
	}
	_, err = leader.Raft().Apply(ctx, &fsmpb.PublishVersionCmd{Header: &fsmpb.Header{AccountId: account}, Name: "fn", ExpectedRevisionId: "stale"})
	if fsm.CodeOf(err) != fsm.CodePrecondition {
		t.Fatalf("stale revision: err = %v, want a precondition refusal", err)
	}
	idx, err := leader.Raft().ReadIndex(ctx)
	if err != nil || idx < 2 {
		t.Fatalf("ReadIndex = %d, %v", idx, err)
	}
}

func TestApplyOnFollowerNamesTheLeader(t *testing.T) {
	c := clustertest.NewRaftCluster(t, 3, nil)
	leader := c.Leader()
	for _, n := range c.Live() {
		if n == leader {
			continue
		}
		_, err := n.Raft().Apply(context.Background(), createFunctionCmd("x"))
		var le *cluster.LeaderError
		if !errors.As(err, &le) || !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("follower apply: err = %v, want a LeaderError", err)
		}
		if le.LeaderID != leader.ID || le.LeaderAddr != leader.Addr {
			t.Fatalf("follower names leader %s@%s, want %s@%s", le.LeaderID, le.LeaderAddr, leader.ID, leader.Addr)
		}
		if _, err := n.Raft().ReadIndex(context.Background()); !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("follower ReadIndex: err = %v", err)
		}
	}
}

// TestLeaderKilledDuringWrites: several writers send 200 creates to whoever
// leads; the leader is killed mid-way. Every acknowledged write must be on
// both survivors, and every failed write must be absent everywhere or
// present everywhere.
func TestLeaderKilledDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node Raft failover test; skipped with -short")
	}
	c := clustertest.NewRaftCluster(t, 3, nil)
	createAccount(t, c)

	const writers, total = 4, 200
	var (
		mu      sync.Mutex
		acked   []string
		failed  []string
		next    atomic.Int64
		victim  = c.Leader()
		wg      sync.WaitGroup
		killNow = make(chan struct{})
	)
	var killOnce sync.Once
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if i == total/2 {
					killOnce.Do(func() { close(killNow) })
				}
				name := fmt.Sprintf("fn-%03d", i)
				err := applyWithRetry(c, createFunctionCmd(name))
				mu.Lock()
				if err == nil {
					acked = append(acked, name)
				} else {
					failed = append(failed, name)
				}
				mu.Unlock()
			}
		}()
	}
	<-killNow
	for i, n := range c.Nodes {
		if n == victim {
			c.Kill(i)
		}
	}
	wg.Wait()
	c.WaitForLeader(10 * time.Second)
	c.WaitForSameState(10 * time.Second)

	if len(acked) < total/2 {
		t.Fatalf("only %d of %d writes acknowledged", len(acked), total)
	}
	survivors := c.Live()
	if len(survivors) != 2 {
		t.Fatalf("%d survivors, want 2", len(survivors))
	}
	for _, name := range acked {
		for _, n := range survivors {
			if n.Raft().Store().View().Function(account, name) == nil {
				t.Errorf("acknowledged %s missing on %s", name, n.ID)
			}
		}
	}
	for _, name := range failed {
		a := survivors[0].Raft().Store().View().Function(account, name) != nil
		b := survivors[1].Raft().Store().View().Function(account, name) != nil
		if a != b {
			t.Errorf("failed write %s present on one survivor only", name)
		}
	}
	t.Logf("acknowledged %d, failed %d", len(acked), len(failed))
}

// applyWithRetry sends cmd to the current leader, retrying with the same
// request id across leader changes for up to 15 s, as a forwarding node
// does. The request id makes a retry of a command that did commit return
// that first outcome instead of applying it twice.
func applyWithRetry(c *clustertest.RaftCluster, cmd fsm.Command) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Apply(ctx, cmd)
		cancel()
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // client backoff between attempts
	}
}

func retryable(err error) bool {
	return errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrNoLeader) ||
		errors.Is(err, cluster.ErrTimeout) || errors.Is(err, cluster.ErrLeadershipLost) ||
		errors.Is(err, cluster.ErrShutdown)
}

func TestRestartedNodeRecoversAndCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node Raft restart test; skipped with -short")
	}
	c := clustertest.NewRaftCluster(t, 3, func(cfg *cluster.RaftConfig) {
		// Snapshot often so the restart exercises snapshot restore + log replay.
		cfg.SnapshotThreshold = 16
		cfg.SnapshotInterval = 50 * time.Millisecond
		cfg.TrailingLogs = 8
	})
	createAccount(t, c)
	ctx := context.Background()
	for i := range 40 {
		if err := c.Apply(ctx, createFunctionCmd(fmt.Sprintf("before-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Kill a follower, write more, restart it from its data dir.
	victim := -1
	for i, n := range c.Nodes {
		if n != c.Leader() {
			victim = i
			break
		}
	}
	c.WaitForSameState(10 * time.Second)
	c.Kill(victim)
	for i := range 40 {
		if err := c.Apply(ctx, createFunctionCmd(fmt.Sprintf("after-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(victim)
	c.WaitForSameState(15 * time.Second)
	v := c.Nodes[victim].Raft().Store().View()
	for _, name := range []string{"before-00", "before-39", "after-00", "after-39"} {
		if v.Function(account, name) == nil {
			t.Fatalf("restarted node lacks %s", name)
		}
	}

	// Restart the whole cluster: every node recovers from disk alone.
	for i := range c.Nodes {
		c.Kill(i)
	}
	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitForLeader(15 * time.Second)
	c.WaitForSameState(15 * time.Second)
	if got := len(c.Nodes[0].Raft().Store().View().Functions(account, "", 0)); got != 80 {
		t.Fatalf("after a full restart node0 holds %d functions, want 80", got)
	}
}
