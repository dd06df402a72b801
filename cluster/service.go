package cluster

import (
	"context"
	"time"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// PeerRemover removes a node from the cluster on the leader (the
// Reconciler; an interface so the service is tested without one).
type PeerRemover interface {
	RemovePeer(ctx context.Context, id string, force bool) error
}

// Service serves the node-to-node Cluster gRPC service over the local
// Raft node. It never forwards: a call that reaches a node that is not the
// leader fails with ErrNotLeader naming the leader, and the caller's
// forwarder retries there (at most one hop per attempt).
type Service struct {
	rpcpb.UnimplementedClusterServer
	raft    *Raft
	remover func() PeerRemover
}

// NewService returns the service; remover returns the reconciler to use
// while this node leads (nil otherwise).
func NewService(r *Raft, remover func() PeerRemover) *Service {
	return &Service{raft: r, remover: remover}
}

// Apply proposes a forwarded command.
func (s *Service) Apply(ctx context.Context, req *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error) {
	res, err := s.raft.ApplyEntry(ctx, req.Entry)
	return &rpcpb.ApplyResponse{Result: res, Error: errorToPB(err)}, nil
}

// ReadIndex returns the leader's read index.
func (s *Service) ReadIndex(ctx context.Context, _ *rpcpb.ReadIndexRequest) (*rpcpb.ReadIndexResponse, error) {
	idx, err := s.raft.ReadIndex(ctx)
	return &rpcpb.ReadIndexResponse{Index: idx, Error: errorToPB(err)}, nil
}

// Status reports this node's Raft state.
func (s *Service) Status(context.Context, *rpcpb.StatusRequest) (*rpcpb.StatusResponse, error) {
	return LocalStatus(s.raft), nil
}

// LocalStatus is the Raft status of r as the Status RPC reports it.
func LocalStatus(r *Raft) *rpcpb.StatusResponse {
	leader, _ := r.Leader()
	contact := int64(-1)
	switch {
	case r.IsLeader():
		contact = 0
	case !r.LastContact().IsZero():
		contact = time.Since(r.LastContact()).Milliseconds()
	}
	return &rpcpb.StatusResponse{NodeId: r.ID(), State: r.State(), Term: r.Term(), LastLogIndex: r.LastIndex(),
		CommitIndex: r.CommitIndex(), AppliedIndex: r.Store().AppliedIndex(), LeaderId: leader,
		LastContactMs: contact, HasState: r.HasState()}
}

// RemovePeer removes a node on the leader.
func (s *Service) RemovePeer(ctx context.Context, req *rpcpb.RemovePeerRequest) (*rpcpb.RemovePeerResponse, error) {
	rem := s.remover()
	if rem == nil || !s.raft.IsLeader() {
		return &rpcpb.RemovePeerResponse{Error: errorToPB(s.raft.notLeader())}, nil
	}
	return &rpcpb.RemovePeerResponse{Error: errorToPB(rem.RemovePeer(ctx, req.NodeId, req.Force))}, nil
}
