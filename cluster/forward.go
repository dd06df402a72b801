package cluster

import (
	"context"
	"fmt"

	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// Forwarder sends writes, read-index requests and membership requests to
// the leader over gRPC. It does not retry: one call is one attempt, and it
// returns the errors a local call would (ErrNotLeader with the leader,
// ErrNoLeader, ErrTimeout when the outcome is unknown, *fsm.Error
// refusals), so the caller's retry loop (node.Metadata) decides what is
// safe to retry; commands carry request ids that the FSM deduplicates.
type Forwarder struct {
	dialer *Dialer
	// resolve maps a node id to its gRPC address.
	resolve func(id string) (string, bool)
}

// NewForwarder returns a forwarder; resolve maps node ids to gRPC
// addresses (the agent looks in gossip, then in the node records).
func NewForwarder(d *Dialer, resolve func(id string) (string, bool)) *Forwarder {
	return &Forwarder{dialer: d, resolve: resolve}
}

func (f *Forwarder) client(leaderID string) (rpcpb.ClusterClient, error) {
	addr, ok := f.resolve(leaderID)
	if !ok || addr == "" {
		// The leader is known to Raft but not yet to gossip: wait for it.
		return nil, fmt.Errorf("%w: leader %s has no known gRPC address yet", ErrNoLeader, leaderID)
	}
	return f.dialer.Client(addr)
}

// ForwardApply proposes an encoded command on the leader.
func (f *Forwarder) ForwardApply(ctx context.Context, leaderID, _ string, entry []byte) (*fsmpb.ApplyResult, error) {
	c, err := f.client(leaderID)
	if err != nil {
		return nil, err
	}
	resp, err := c.Apply(ctx, &rpcpb.ApplyRequest{Entry: entry})
	if err != nil {
		return nil, transportError(err)
	}
	if err := errorFromPB(resp.Error); err != nil {
		return nil, err
	}
	return resp.Result, nil
}

// ForwardReadIndex asks the leader for its read index.
func (f *Forwarder) ForwardReadIndex(ctx context.Context, leaderID, _ string) (uint64, error) {
	c, err := f.client(leaderID)
	if err != nil {
		return 0, err
	}
	resp, err := c.ReadIndex(ctx, &rpcpb.ReadIndexRequest{})
	if err != nil {
		return 0, transportError(err)
	}
	if err := errorFromPB(resp.Error); err != nil {
		return 0, err
	}
	return resp.Index, nil
}

// RemovePeer asks the leader to remove a node.
func (f *Forwarder) RemovePeer(ctx context.Context, leaderID, nodeID string, force bool) error {
	c, err := f.client(leaderID)
	if err != nil {
		return err
	}
	resp, err := c.RemovePeer(ctx, &rpcpb.RemovePeerRequest{NodeId: nodeID, Force: force})
	if err != nil {
		return transportError(err)
	}
	return errorFromPB(resp.Error)
}

// Status asks the node at a gRPC address for its Raft status.
func (f *Forwarder) Status(ctx context.Context, grpcAddr string) (*rpcpb.StatusResponse, error) {
	c, err := f.dialer.Client(grpcAddr)
	if err != nil {
		return nil, err
	}
	resp, err := c.Status(ctx, &rpcpb.StatusRequest{})
	if err != nil {
		return nil, transportError(err)
	}
	return resp, nil
}
