package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/async"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// This file wires the asynchronous invocation queue (node/async) into the
// agent: its view of the replicated state, of the membership, and its
// node-to-node payload transport.

// newAsyncQueue builds the queue over the agent's parts. Deliveries go
// through a.invoker, the node's whole invoke path, which must be built
// first.
func (a *Agent) newAsyncQueue() (*async.Queue, error) {
	cfg := a.cfg.Async
	cfg.NodeID, cfg.Region, cfg.Logger = a.nodeID, a.cfg.Region, a.cfg.Logger
	cfg.Dir = filepath.Join(a.cfg.DataDir, "async")
	a.asyncPeers = &asyncPeers{a: a}
	return async.New(cfg, async.Deps{
		Replica: asyncReplica{meta: a.meta, raft: a.raft},
		Members: &asyncMembers{a: a},
		Peers:   a.asyncPeers,
		Invoker: a.invoker,
		Metrics: a.metrics,
	})
}

// registerAsync adds the payload service to the node's gRPC server.
func (a *Agent) registerAsync(srv *grpc.Server) {
	if a.async != nil {
		rpcpb.RegisterAsyncQueueServer(srv, async.NewServer(a.async))
	}
}

// AsyncQueue is the node's asynchronous invocation queue.
func (a *Agent) AsyncQueue() *async.Queue { return a.async }

type asyncReplica struct {
	meta *Metadata
	raft *cluster.Raft
}

func (r asyncReplica) Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	return r.meta.Apply(ctx, cmd)
}
func (r asyncReplica) View() *fsm.View      { return r.meta.View() }
func (r asyncReplica) AppliedIndex() uint64 { return r.raft.Store().AppliedIndex() }
func (r asyncReplica) IsLeader() bool       { return r.raft.IsLeader() }
func (r asyncReplica) Sync(ctx context.Context) error {
	_, err := r.meta.ConsistentView(ctx)
	return err
}
func (r asyncReplica) WaitForIndex(ctx context.Context, index uint64) error {
	return r.raft.Store().WaitForIndex(ctx, index)
}

// asyncMembers is the queue's membership view: committed node records,
// gossip liveness (this node is always alive to itself).
type asyncMembers struct{ a *Agent }

// IsAlive is false only for a node known to be gone: dead or left in
// gossip, or no longer a committed node. A committed node this node's
// gossip has not met yet (right after a restart) counts as alive, so a
// node that just came up does not take over, and re-home, the events of
// peers it simply has not heard from.
func (m *asyncMembers) IsAlive(id string) bool {
	if id == m.a.nodeID {
		return true
	}
	if mem, ok := m.a.gossip.Member(id); ok {
		return mem.Alive()
	}
	return m.a.meta.View().Node(id) != nil
}

func (m *asyncMembers) Nodes() []string {
	nodes := m.a.meta.View().Nodes()
	out := make([]string, 0, len(nodes)+1)
	self := false
	for _, n := range nodes {
		out = append(out, n.Id)
		self = self || n.Id == m.a.nodeID
	}
	if !self {
		out = append(out, m.a.nodeID)
	}
	return out
}

// Subscribe signals joins, failures and leaves (not load updates, which
// gossip carries every few seconds and which change no ownership).
func (m *asyncMembers) Subscribe() (<-chan struct{}, func()) {
	events, cancel := m.a.gossip.Subscribe(64)
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case ev := <-events:
				if ev.Kind == cluster.EventUpdate {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { cancel(); close(done) }) }
}

// asyncPeers calls other nodes' AsyncQueue service over the cluster's
// authenticated gRPC connections (mutual TLS and the cluster token), shared
// with the node's other node-to-node clients.
type asyncPeers struct {
	a *Agent
}

func (p *asyncPeers) client(node string) (rpcpb.AsyncQueueClient, error) {
	addr, ok := p.a.grpcAddrOf(node)
	if !ok {
		return nil, fmt.Errorf("node %s has no known gRPC address", node)
	}
	cc, err := p.a.dialer.Conn(addr)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewAsyncQueueClient(cc), nil
}

func (p *asyncPeers) Store(ctx context.Context, node string, ps []*rpcpb.EventPayload) error {
	c, err := p.client(node)
	if err != nil {
		return err
	}
	_, err = c.Store(ctx, &rpcpb.StoreEventsRequest{Events: ps})
	return err
}

func (p *asyncPeers) Fetch(ctx context.Context, node string, ids []string) ([]*rpcpb.EventPayload, error) {
	c, err := p.client(node)
	if err != nil {
		return nil, err
	}
	resp, err := c.Fetch(ctx, &rpcpb.FetchEventsRequest{Ids: ids})
	if err != nil {
		return nil, err
	}
	return resp.Events, nil
}
