package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// invokeService is the callee's end of a forwarded invocation. It runs the
// invocation on this node or refuses it; it never forwards it again. The
// cluster's gRPC server authenticates every caller (mutual TLS and the
// cluster token) before a frame reaches it.
type invokeService struct {
	rpcpb.UnimplementedInvokeServer
	r *router
}

func (s *invokeService) Invoke(stream rpcpb.Invoke_InvokeServer) error {
	frame, err := stream.Recv()
	if err != nil {
		return err
	}
	start := frame.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "invoke: the first frame must be a start")
	}
	rest := func() ([]byte, error) {
		if err := stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Continue{Continue: &rpcpb.InvokeContinue{}}}); err != nil {
			return nil, err
		}
		payload := make([]byte, 0, start.PayloadSize)
		payload = append(payload, start.Payload...)
		for len(payload) < int(start.PayloadSize) {
			f, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil, status.Error(codes.InvalidArgument, "invoke: the stream ended before the payload announced")
			}
			if err != nil {
				return nil, err
			}
			chunk := f.GetChunk()
			if len(payload)+len(chunk) > int(start.PayloadSize) {
				return nil, status.Error(codes.InvalidArgument, "invoke: more payload than announced")
			}
			payload = append(payload, chunk...)
		}
		return payload, nil
	}
	return s.serve(stream.Context(), start, stream.Send, rest, s.r.cfg.ChunkBytes)
}

func (s *invokeService) InvokeWhole(ctx context.Context, start *rpcpb.InvokeStart) (*rpcpb.InvokeReply, error) {
	if len(start.Payload) != int(start.PayloadSize) {
		return nil, status.Error(codes.InvalidArgument, "invoke: InvokeWhole carries the whole payload")
	}
	var reply *rpcpb.InvokeReply
	err := s.serve(ctx, start, func(r *rpcpb.InvokeReply) error {
		reply = r
		return nil
	}, nil, lambdaapi.MaxSyncPayloadBytes+1<<20)
	return reply, err
}

// serve runs or refuses the invocation start describes; rest, when the
// payload did not fit in start, asks the caller for the remainder (only
// once this node decided it may take the invocation). The response is
// sent in chunks of at most chunk bytes.
func (s *invokeService) serve(ctx context.Context, start *rpcpb.InvokeStart, send func(*rpcpb.InvokeReply) error, rest func() ([]byte, error), chunk int) error {
	if start.Config == nil || int(start.PayloadSize) > lambdaapi.MaxSyncPayloadBytes || len(start.Payload) > int(start.PayloadSize) {
		return status.Error(codes.InvalidArgument, "invoke: malformed start")
	}
	req := &lambdaapi.InvokeRequest{
		RequestID: start.RequestId, AccountID: start.AccountId, FunctionName: start.FunctionName,
		Version: start.Version, Revision: start.Revision, Config: start.Config, InvokedARN: start.InvokedArn,
		ClientContext: start.ClientContext, Tail: start.Tail, Payload: start.Payload,
	}
	if int(start.PayloadSize) > len(start.Payload) {
		if rest == nil {
			return status.Error(codes.InvalidArgument, "invoke: payload incomplete")
		}
		// Refuse before the rest of a large payload moves; runHere checks
		// again once it has (a whole payload is checked there only).
		if ref := s.r.precheck(req, start.Mode, true); ref.refused() {
			return sendRefusal(send, ref)
		}
		payload, err := rest()
		if err != nil {
			return err
		}
		req.Payload = payload
	}

	res, ref, err := s.r.runHere(ctx, req, start.Mode)
	switch {
	case ref.refused():
		return sendRefusal(send, ref)
	case err != nil && ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err() // the caller went away
	case err != nil:
		var apiErr *lambdaapi.Error
		if !errors.As(err, &apiErr) {
			s.r.log.Warn("forwarded invocation failed", "request", req.RequestID, "function", req.FunctionName, "err", err)
			apiErr = &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
				Message: fmt.Sprintf("The invocation failed on node %s. Retry the request (request %s).", s.r.self, req.RequestID)}
		}
		return send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Error{Error: &rpcpb.InvokeError{
			Status: int32(apiErr.Status), Type: apiErr.Type, Message: apiErr.Message, Reason: apiErr.Reason, RetryAfter: int32(apiErr.RetryAfter),
		}}})
	}
	first := res.Payload[:min(len(res.Payload), chunk)]
	head := &rpcpb.InvokeResultHead{
		FunctionError: res.FunctionError, LogTail: res.LogTail, Node: res.Node, ColdStart: res.ColdStart,
		InitDurationNs: int64(res.InitDuration), DurationNs: int64(res.Duration),
		PayloadSize: uint32(len(res.Payload)), Payload: first,
	}
	if err := send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Result{Result: head}}); err != nil {
		return err
	}
	for rest := res.Payload[len(first):]; len(rest) > 0; {
		n := min(len(rest), chunk)
		if err := send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Chunk{Chunk: rest[:n]}}); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func sendRefusal(send func(*rpcpb.InvokeReply) error, ref refusal) error {
	return send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Refused{Refused: &rpcpb.InvokeRefusal{Reason: ref.reason, Message: ref.message}}})
}
