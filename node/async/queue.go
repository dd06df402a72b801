package async

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// Replica is the replicated state as the queue uses it: commands through
// the leader, reads of the local replica, and a way to wait for new
// entries. node.Metadata plus its Raft store provide it.
type Replica interface {
	Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error)
	View() *fsm.View
	AppliedIndex() uint64
	// WaitForIndex blocks until the replica has applied index or ctx ends.
	WaitForIndex(ctx context.Context, index uint64) error
	// IsLeader reports whether this node leads Raft (it runs the
	// dead-letter retention sweep).
	IsLeader() bool
	// Sync waits until the local replica reflects every write
	// acknowledged before the call (a read index from the leader).
	Sync(ctx context.Context) error
}

// Membership is this node's view of the cluster.
type Membership interface {
	// IsAlive reports gossip liveness; it is called on every ownership
	// decision and must be cheap.
	IsAlive(id string) bool
	// Nodes lists the ids of the committed nodes, this one included.
	Nodes() []string
	// Subscribe signals membership changes (coalesced); cancel ends it.
	Subscribe() (changes <-chan struct{}, cancel func())
}

// Peers carries payloads to and from other nodes' payload logs (the
// AsyncQueue gRPC service). Each call is one attempt.
type Peers interface {
	Store(ctx context.Context, node string, payloads []*rpcpb.EventPayload) error
	Fetch(ctx context.Context, node string, ids []string) ([]*rpcpb.EventPayload, error)
}

// Deps are the components the queue calls.
type Deps struct {
	Replica Replica
	Members Membership
	Peers   Peers
	// Invoker is the node's whole invoke path (admission, placement,
	// sandboxes); deliveries go through it exactly as sync invokes do.
	Invoker lambdaapi.Invoker
	// Metrics receives the queue's series; nil: none.
	Metrics prometheus.Registerer
}

// Queue is one node's part of the cluster's asynchronous invocation queue:
// it accepts events (Enqueue), serves its payload log to peers, and
// delivers the events it owns. See doc.go for the design.
type Queue struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	store *PayloadLog
	m     *metrics
	acc   *acceptor
	set   *settler
	sched *scheduler

	ctx    context.Context
	cancel context.CancelFunc
	// stopping is closed when Close begins: no new attempt starts, the
	// ones in flight finish and their outcomes are flushed.
	stopping chan struct{}
	wg       sync.WaitGroup
	// repairing is set while a repair pass copies payloads.
	repairing atomic.Bool
	start     sync.Once
	closed    sync.Once
}

// ErrNotStored wraps every reason an event could not be accepted: it was
// not stored on enough nodes or its record did not commit.
var ErrNotStored = errors.New("async: event not stored")

// New opens the node's payload log. Delivery starts with Start.
func New(cfg Config, deps Deps) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.NodeID == "" || cfg.Region == "" || cfg.Dir == "" || cfg.Logger == nil:
		return nil, errors.New("async: NodeID, Region, Dir and Logger are required")
	case deps.Replica == nil || deps.Members == nil || deps.Peers == nil || deps.Invoker == nil:
		return nil, errors.New("async: Replica, Members, Peers and Invoker are required")
	}
	log := cfg.Logger.With("component", "async", "node", cfg.NodeID)
	store, err := OpenPayloadLog(cfg.Dir, cfg.SegmentBytes, log)
	if err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, deps: deps, log: log, store: store, stopping: make(chan struct{})}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.acc = newAcceptor(q)
	q.set = newSettler(q)
	q.sched = newScheduler(q)
	q.m = newMetrics(deps.Metrics, q)
	return q, nil
}

// Start begins accepting and delivering. It may be called once.
func (q *Queue) Start() {
	q.start.Do(func() {
		q.goRun(q.acc.run)
		q.goRun(q.set.run)
		q.goRun(q.sched.run)
		q.goRun(q.follow)
		q.goRun(q.housekeep)
	})
}

func (q *Queue) goRun(fn func()) {
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		fn()
	}()
}

// Close stops delivery gracefully: no new attempt starts, attempts in
// flight get up to CloseTimeout to finish and have their outcomes
// committed (an outcome lost here means a duplicate delivery by the next
// owner), then everything is cancelled, pending Enqueue calls fail and the
// payload log closes.
func (q *Queue) Close() error {
	q.closed.Do(func() {
		q.start.Do(func() { close(q.sched.stopped) }) // never started
		close(q.stopping)
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			<-q.sched.stopped
			q.sched.waitWorkers()
			ctx, cancel := context.WithTimeout(q.ctx, q.cfg.CloseTimeout)
			defer cancel()
			q.set.flush(ctx)
		}()
		t := time.NewTimer(q.cfg.CloseTimeout)
		select {
		case <-drained:
		case <-t.C:
			q.log.Warn("async queue did not drain within its close timeout; the next owners will deliver what is left", "timeout", q.cfg.CloseTimeout)
		}
		t.Stop()
		q.cancel()
		<-drained
		q.wg.Wait()
		_ = q.store.Close()
	})
	return nil
}

// Enqueue durably stores an Event invocation and returns nil once it
// survives the loss of any single node: its payload is fsynced on this
// node and Copies-1 others, and its record is committed to Raft. Errors
// wrap ErrNotStored (as a ServiceException for the API) or are ctx's.
func (q *Queue) Enqueue(ctx context.Context, req *lambdaapi.InvokeRequest) error {
	ev := &fsmpb.AsyncEvent{
		Id:           req.RequestID,
		AccountId:    req.AccountID,
		FunctionName: req.FunctionName,
		Qualifier:    qualifierOf(req.InvokedARN),
		Version:      req.Version,
		PayloadBytes: int64(len(req.Payload)),
		InvokedArn:   req.InvokedARN,
	}
	p := &rpcpb.EventPayload{Id: req.RequestID, Payload: req.Payload, ClientContext: req.ClientContext}
	err := q.acc.submit(ctx, ev, p)
	if errors.Is(err, ErrNotStored) || errors.Is(err, ErrClosed) {
		return &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: "The event could not be queued durably; it was not accepted: " + err.Error()}
	}
	return err
}

// qualifierOf extracts the qualifier from an invoked function ARN
// (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]); unqualified
// is $LATEST.
func qualifierOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) == 8 && parts[7] != "" {
		return parts[7]
	}
	return fsm.VersionLatest
}

// owns reports whether this node delivers ev: it is the first holder that
// is alive in this node's gossip view.
func (q *Queue) owns(ev *fsmpb.AsyncEvent) bool {
	for _, h := range ev.Holders {
		if h == q.cfg.NodeID {
			return true
		}
		if q.deps.Members.IsAlive(h) {
			return false
		}
	}
	return false
}

// replicaCandidates lists the live committed nodes other than this one,
// in ring order starting after this node's id, so each node's copies land
// on its successors and copies spread evenly when acceptance does.
func (q *Queue) replicaCandidates(exclude []string) []string {
	nodes := slices.Clone(q.deps.Members.Nodes())
	slices.Sort(nodes)
	start, _ := slices.BinarySearch(nodes, q.cfg.NodeID)
	var out []string
	for i := range nodes {
		id := nodes[(start+i)%len(nodes)]
		if id == q.cfg.NodeID || slices.Contains(exclude, id) || !q.deps.Members.IsAlive(id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// maxRPCBytes bounds one Store request, under gRPC's default 4 MiB
// message limit.
const maxRPCBytes = 3 << 20

// storeOn copies payloads to node in chunks that fit one RPC each.
func (q *Queue) storeOn(ctx context.Context, node string, ps []*rpcpb.EventPayload) error {
	for len(ps) > 0 {
		n, size := 0, 0
		for n < len(ps) && (n == 0 || size+len(ps[n].Payload)+len(ps[n].ClientContext) < maxRPCBytes) {
			size += len(ps[n].Payload) + len(ps[n].ClientContext)
			n++
		}
		if err := q.deps.Peers.Store(ctx, node, ps[:n]); err != nil {
			return fmt.Errorf("store on %s: %w", node, err)
		}
		ps = ps[n:]
	}
	return nil
}

// replicate writes payloads to the local log and to other nodes until
// Copies nodes hold them, and returns the holders, this node first. With
// fewer live nodes than Copies it settles for all of them; it fails if a
// live node that should have taken a copy could not.
func (q *Queue) replicate(ctx context.Context, ps []*rpcpb.EventPayload) ([]string, error) {
	local := make(chan error, 1)
	go func() { local <- q.store.Append(ps) }()
	holders := []string{q.cfg.NodeID}
	candidates := q.replicaCandidates(nil)
	var errs []error
	for _, node := range candidates {
		if len(holders) >= q.cfg.Copies {
			break
		}
		sctx, cancel := context.WithTimeout(ctx, q.storeTimeout())
		err := q.storeOn(sctx, node, ps)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		holders = append(holders, node)
	}
	if err := <-local; err != nil {
		return nil, fmt.Errorf("%w: local payload log: %v", ErrNotStored, err)
	}
	if len(holders) < q.cfg.Copies {
		if len(errs) > 0 {
			return nil, fmt.Errorf("%w: %d of %d copies stored: %v", ErrNotStored, len(holders), q.cfg.Copies, errors.Join(errs...))
		}
		q.m.underReplica.Add(float64(len(ps)))
	}
	return holders, nil
}

// storeTimeout bounds one peer's copy, so that a node that is alive in
// gossip but not answering costs a fraction of the accept budget before
// the next candidate is tried.
func (q *Queue) storeTimeout() time.Duration { return q.cfg.AcceptTimeout / 4 }

// payload returns an event's payload from this node's log, or from
// another holder when this node lost its copy.
func (q *Queue) payload(ctx context.Context, ev *fsmpb.AsyncEvent) (*rpcpb.EventPayload, error) {
	p, err := q.store.Get(ev.Id)
	if err == nil {
		return p, nil
	}
	for _, h := range ev.Holders {
		if h == q.cfg.NodeID || !q.deps.Members.IsAlive(h) {
			continue
		}
		got, ferr := q.deps.Peers.Fetch(ctx, h, []string{ev.Id})
		if ferr == nil && len(got) == 1 {
			return got[0], nil
		}
		if ferr != nil {
			err = errors.Join(err, ferr)
		}
	}
	return nil, fmt.Errorf("payload of %s: %w", ev.Id, err)
}
