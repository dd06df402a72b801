package async

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// Server serves this node's payload log to its peers (the AsyncQueue gRPC
// service): holders store copies with Store, owners that lost a copy and
// `stoke dlq show` read with Fetch.
type Server struct {
	rpcpb.UnimplementedAsyncQueueServer
	q *Queue
}

// NewServer returns the gRPC service of q.
func NewServer(q *Queue) *Server { return &Server{q: q} }

// Store writes the payloads durably before answering.
func (s *Server) Store(_ context.Context, req *rpcpb.StoreEventsRequest) (*rpcpb.StoreEventsResponse, error) {
	for _, p := range req.Events {
		if p.GetId() == "" {
			return nil, status.Error(codes.InvalidArgument, "a payload without an event id")
		}
	}
	if err := s.q.store.Append(req.Events); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, status.Error(codes.Unavailable, "this node is shutting down")
		}
		return nil, status.Errorf(codes.Internal, "store payloads: %v", err)
	}
	return &rpcpb.StoreEventsResponse{}, nil
}

// Fetch returns the payloads this node holds among the requested ids, as
// many as fit one response; absent ids are left out.
func (s *Server) Fetch(_ context.Context, req *rpcpb.FetchEventsRequest) (*rpcpb.FetchEventsResponse, error) {
	out := &rpcpb.FetchEventsResponse{}
	size := 0
	for _, id := range req.Ids {
		p, err := s.q.store.Get(id)
		if err != nil {
			continue
		}
		if size += len(p.Payload) + len(p.ClientContext); size > maxRPCBytes && len(out.Events) > 0 {
			break
		}
		out.Events = append(out.Events, p)
	}
	return out, nil
}
