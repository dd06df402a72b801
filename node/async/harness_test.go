package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// The harness runs several queues ("nodes") over one in-memory replica of
// the state machine, with a membership table and a payload transport the
// test controls, and an invoker the test scripts. It exercises the queue's
// logic without Raft, sockets or sandboxes; node/async_test.go runs the
// same scenarios on real agents.

const (
	testAccount = "123456789012"
	testRegion  = "local"
)

type memReplica struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	down  bool // Apply fails (no leader)
}

func (r *memReplica) Apply(_ context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	entry, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, errors.New("no leader")
	}
	entry, err = fsm.Stamp(entry, time.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	r.index++
	res := r.f.Apply(r.index, entry)
	return res.Value, res.Err
}

func (r *memReplica) View() *fsm.View            { return r.f.Store().View() }
func (r *memReplica) AppliedIndex() uint64       { return r.f.Store().AppliedIndex() }
func (r *memReplica) IsLeader() bool             { return true }
func (r *memReplica) Sync(context.Context) error { return nil }
func (r *memReplica) WaitForIndex(ctx context.Context, i uint64) error {
	return r.f.Store().WaitForIndex(ctx, i)
}

func (r *memReplica) must(t testing.TB, cmd fsm.Command) {
	t.Helper()
	if _, err := r.Apply(context.Background(), cmd); err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
}

// world is the shared membership and transport of the harness's nodes.
type world struct {
	mu     sync.Mutex
	alive  map[string]bool
	queues map[string]*Queue
	subs   []chan struct{}
}

func (w *world) setAlive(id string, alive bool) {
	w.mu.Lock()
	w.alive[id] = alive
	subs := slices.Clone(w.subs)
	w.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

type members struct {
	w    *world
	self string
}

func (m members) IsAlive(id string) bool {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	return id == m.self || m.w.alive[id]
}

func (m members) Nodes() []string {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	var out []string
	for id := range m.w.alive {
		out = append(out, id)
	}
	return out
}

func (m members) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.w.mu.Lock()
	m.w.subs = append(m.w.subs, ch)
	m.w.mu.Unlock()
	return ch, func() {}
}

type peers struct{ w *world }

func (p peers) queue(node string) (*Queue, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	q := p.w.queues[node]
	if q == nil || !p.w.alive[node] {
		return nil, fmt.Errorf("node %s unreachable", node)
	}
	return q, nil
}

func (p peers) Store(_ context.Context, node string, ps []*rpcpb.EventPayload) error {
	q, err := p.queue(node)
	if err != nil {
		return err
	}
	return q.store.Append(ps)
}

func (p peers) Fetch(_ context.Context, node string, ids []string) ([]*rpcpb.EventPayload, error) {
	q, err := p.queue(node)
	if err != nil {
		return nil, err
	}
	var out []*rpcpb.EventPayload
	for _, id := range ids {
		if pl, err := q.store.Get(id); err == nil {
			out = append(out, pl)
		}
	}
	return out, nil
}

// script decides what an invocation returns.
type script func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error)

type invoker struct {
	mu    sync.Mutex
	calls map[string][]*lambdaapi.InvokeRequest // by function
	run   script
}

func (iv *invoker) Invoke(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	iv.mu.Lock()
	iv.calls[req.FunctionName] = append(iv.calls[req.FunctionName], req)
	run := iv.run
	iv.mu.Unlock()
	return run(ctx, req)
}

func (iv *invoker) count(fn string) int {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return len(iv.calls[fn])
}

func (iv *invoker) requests(fn string) []*lambdaapi.InvokeRequest {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return slices.Clone(iv.calls[fn])
}

func succeed(_ context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	return &lambdaapi.InvokeResult{Payload: []byte(`"ok"`)}, nil
}

func functionError(msg string) (*lambdaapi.InvokeResult, error) {
	return &lambdaapi.InvokeResult{FunctionError: "Unhandled",
		Payload: []byte(`{"errorType":"Exception","errorMessage":"` + msg + `"}`)}, nil
}

type harness struct {
	t       *testing.T
	replica *memReplica
	world   *world
	inv     *invoker
	mu      sync.Mutex
	tries   []Attempt
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, replica: &memReplica{f: fsm.New()},
		world: &world{alive: map[string]bool{}, queues: map[string]*Queue{}},
		inv:   &invoker{calls: map[string][]*lambdaapi.InvokeRequest{}, run: succeed}}
	h.replica.must(t, &fsmpb.CreateAccountCmd{Header: &fsmpb.Header{}, Account: &fsmpb.Account{
		Id: testAccount, ConcurrencyLimit: 1000, UnreservedMinimum: 100}})
	return h
}

func (h *harness) createFunction(name string) {
	h.replica.must(h.t, &fsmpb.CreateFunctionCmd{Header: &fsmpb.Header{AccountId: testAccount}, Name: name,
		Config: &fsmpb.FunctionConfig{Runtime: "python3.11", Handler: "app.handler", MemoryMb: 128, TimeoutS: 3,
			EphemeralMb: 512, CodeSha256: "sha", BlobId: "blob"}})
}

// testConfig scales every delay by 1/1000: 1 min retry delays take 60 ms,
// a 60 s maximum age 60 ms, backoff runs from 1 ms to 300 ms.
func testConfig(id, dir string, t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Region, cfg.Dir = id, testRegion, dir
	cfg.TimeScale = 0.001
	cfg.RescanInterval = 50 * time.Millisecond
	cfg.SweepInterval = 50 * time.Millisecond
	cfg.AcceptTimeout = time.Second
	cfg.CloseTimeout = 200 * time.Millisecond
	cfg.SweepGrace = 2 * time.Second
	cfg.Logger = clustertest.Logger(t, slog.LevelWarn).With("node", id)
	return cfg
}

// node starts a queue named id.
func (h *harness) node(id string, tune ...func(*Config)) *Queue {
	h.t.Helper()
	return h.nodeOn(id, h.replica, tune...)
}

// nodeOn starts a queue named id that sees the state through r.
func (h *harness) nodeOn(id string, r Replica, tune ...func(*Config)) *Queue {
	h.t.Helper()
	cfg := testConfig(id, h.t.TempDir(), h.t)
	cfg.OnAttempt = func(a Attempt) {
		h.mu.Lock()
		h.tries = append(h.tries, a)
		h.mu.Unlock()
	}
	for _, f := range tune {
		f(&cfg)
	}
	q, err := New(cfg, Deps{Replica: r, Members: members{w: h.world, self: id}, Peers: peers{w: h.world}, Invoker: h.inv})
	if err != nil {
		h.t.Fatal(err)
	}
	h.world.mu.Lock()
	h.world.queues[id] = q
	h.world.mu.Unlock()
	h.world.setAlive(id, true)
	q.Start()
	h.t.Cleanup(func() { q.Close() })
	return q
}

// forget removes a dead node from the committed nodes (the leader reaped it).
func (h *harness) forget(id string) {
	h.world.mu.Lock()
	delete(h.world.alive, id)
	h.world.mu.Unlock()
}

// kill stops a node as a crash looks to its peers: it stops answering and
// gossip declares it dead.
func (h *harness) kill(id string) {
	h.world.mu.Lock()
	q := h.world.queues[id]
	h.world.mu.Unlock()
	q.Close()
	h.world.setAlive(id, false)
}

func (h *harness) attempts() []Attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.tries)
}

func (h *harness) enqueue(q *Queue, fn string, body any) string {
	h.t.Helper()
	payload, _ := json.Marshal(body)
	id := newID()
	req := &lambdaapi.InvokeRequest{RequestID: id, AccountID: testAccount, FunctionName: fn, Version: fsm.VersionLatest,
		InvokedARN: lambdaapi.FunctionARN(testRegion, testAccount, fn), Payload: payload}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, req); err != nil {
		h.t.Fatalf("enqueue: %v", err)
	}
	return id
}

func (h *harness) counts() (pending, dead int) { return h.replica.View().AsyncEventCounts() }

// useStokeDLQ makes Stoke's built-in dead-letter queue fn's dead-letter
// target.
func (h *harness) useStokeDLQ(fn string) {
	h.replica.must(h.t, &fsmpb.UpdateFunctionConfigCmd{Header: &fsmpb.Header{AccountId: testAccount}, Name: fn,
		Fields: []string{"dead_letter_target_arn"}, Config: &fsmpb.FunctionConfig{DeadLetterTargetArn: lambdaapi.DeadLetterQueueShorthand}})
}

// waitDead waits until n events are dead-lettered.
func (h *harness) waitDead(n int) {
	h.t.Helper()
	clustertest.WaitFor(h.t, 10*time.Second, func() error {
		if _, dead := h.counts(); dead != n {
			return fmt.Errorf("%d events dead-lettered, want %d", dead, n)
		}
		return nil
	})
}

func (h *harness) waitDrained(timeout time.Duration) {
	h.t.Helper()
	clustertest.WaitFor(h.t, timeout, func() error {
		if p, _ := h.counts(); p != 0 {
			return fmt.Errorf("%d events pending", p)
		}
		return nil
	})
}
