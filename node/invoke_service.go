package node

import (
	"errors"
	"fmt"
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
	if start == nil || start.Config == nil || int(start.PayloadSize) > lambdaapi.MaxSyncPayloadBytes || len(start.Payload) > int(start.PayloadSize) {
		return status.Error(codes.InvalidArgument, "invoke: the first frame must be a well-formed start")
	}
	req := &lambdaapi.InvokeRequest{
		RequestID: start.RequestId, AccountID: start.AccountId, FunctionName: start.FunctionName,
		Version: start.Version, Revision: start.Revision, Config: start.Config, InvokedARN: start.InvokedArn,
		ClientContext: start.ClientContext, Tail: start.Tail,
	}
	more := int(start.PayloadSize) > len(start.Payload)
	if ref := s.r.precheck(req, start.Mode, more); ref.refused() {
		return sendRefusal(stream, ref)
	}
	payload := start.Payload
	if more {
		if err := stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Continue{Continue: &rpcpb.InvokeContinue{}}}); err != nil {
			return err
		}
		payload = make([]byte, 0, start.PayloadSize)
		payload = append(payload, start.Payload...)
		for len(payload) < int(start.PayloadSize) {
			f, err := stream.Recv()
			if err != nil {
				return err
			}
			chunk := f.GetChunk()
			if len(payload)+len(chunk) > int(start.PayloadSize) {
				return status.Error(codes.InvalidArgument, "invoke: more payload than announced")
			}
			payload = append(payload, chunk...)
		}
	}
	req.Payload = payload

	res, ref, err := s.r.runHere(stream.Context(), req, start.Mode)
	switch {
	case ref.refused():
		return sendRefusal(stream, ref)
	case err != nil && stream.Context().Err() != nil:
		return status.FromContextError(stream.Context().Err()).Err() // the caller went away
	case err != nil:
		var apiErr *lambdaapi.Error
		if !errors.As(err, &apiErr) {
			s.r.log.Warn("forwarded invocation failed", "request", req.RequestID, "function", req.FunctionName, "err", err)
			apiErr = &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
				Message: fmt.Sprintf("The invocation failed on node %s: %v", s.r.self, err)}
		}
		return stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Error{Error: &rpcpb.InvokeError{
			Status: int32(apiErr.Status), Type: apiErr.Type, Message: apiErr.Message, Reason: apiErr.Reason, RetryAfter: int32(apiErr.RetryAfter),
		}}})
	}
	chunk := s.r.cfg.ChunkBytes
	first := res.Payload[:min(len(res.Payload), chunk)]
	head := &rpcpb.InvokeResultHead{
		FunctionError: res.FunctionError, LogTail: res.LogTail, Node: res.Node, ColdStart: res.ColdStart,
		InitDurationNs: int64(res.InitDuration), DurationNs: int64(res.Duration),
		PayloadSize: uint32(len(res.Payload)), Payload: first,
	}
	if err := stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Result{Result: head}}); err != nil {
		return err
	}
	for rest := res.Payload[len(first):]; len(rest) > 0; {
		n := min(len(rest), chunk)
		if err := stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Chunk{Chunk: rest[:n]}}); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func sendRefusal(stream rpcpb.Invoke_InvokeServer, ref refusal) error {
	return stream.Send(&rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Refused{Refused: &rpcpb.InvokeRefusal{Reason: ref.reason, Message: ref.message}}})
}
