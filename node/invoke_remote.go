package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// This file is the caller's end of a forwarded invocation (the Invoke
// gRPC service, proto/rpcpb/invoke.proto); invoke_service.go is the
// callee's.

// errUnreachable wraps failures that happened before the callee could
// have seen the invocation: another node may be tried.
var errUnreachable = errors.New("node unreachable")

// errOutcomeUnknown marks a forward that broke after the callee may have
// started the function.
var errOutcomeUnknown = errors.New("outcome unknown")

// unknownOutcomeError is what the caller of a broken forward gets: a
// ServiceException in Lambda's shape that says the function may have run.
type unknownOutcomeError struct{ apiErr *lambdaapi.Error }

func (e *unknownOutcomeError) Error() string   { return e.apiErr.Error() }
func (e *unknownOutcomeError) Unwrap() []error { return []error{e.apiErr, errOutcomeUnknown} }

func unknownOutcome(node, requestID string, cause error) error {
	return &unknownOutcomeError{apiErr: &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
		Message: fmt.Sprintf("Node %s stopped answering while it ran this invocation (RequestId: %s); the function may or may not have completed. Cause: %v",
			node, requestID, cause)}}
}

// maxReplyBytes bounds a unary InvokeWhole reply: a 6 MB response plus
// its log tail and framing.
const maxReplyBytes = 8 << 20

// connectWait bounds how long a forward waits for a connection that is
// being (re)established.
const connectWait = time.Second

// connected reports whether cc is ready for a call, connecting it if it is
// idle and waiting up to connectWait. A node whose address refuses
// connections is not: the invocation was never sent and another node may
// take it. (A connection that breaks after this check makes the outcome
// unknown instead.)
func connected(ctx context.Context, cc *grpc.ClientConn) bool {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	for {
		st := cc.GetState()
		switch st {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

// remoteInvoker forwards invocations to other nodes over the cluster's
// authenticated gRPC connections.
type remoteInvoker struct {
	dialer *cluster.Dialer
	addrOf func(id string) (string, bool)
	chunk  int
}

// invoke offers req to node id in mode. It returns the result, or the
// callee's refusal, or an error; sent reports whether the callee may have
// seen the invocation (when false, err wraps errUnreachable).
func (c *remoteInvoker) invoke(ctx context.Context, id string, req *lambdaapi.InvokeRequest, mode rpcpb.InvokeMode) (res *lambdaapi.InvokeResult, ref refusal, sent bool, err error) {
	addr, ok := c.addrOf(id)
	if !ok {
		return nil, refusal{}, false, fmt.Errorf("%w: no gRPC address for %s", errUnreachable, id)
	}
	cc, err := c.dialer.Conn(addr)
	if err != nil {
		return nil, refusal{}, false, fmt.Errorf("%w: %v", errUnreachable, err)
	}
	if !connected(ctx, cc) {
		return nil, refusal{}, false, fmt.Errorf("%w: %s: no connection to %s", errUnreachable, id, addr)
	}
	// Fail fast (no wait-for-ready): a node whose port refuses connections
	// fails here, before anything is sent, and the next node is tried.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := req.Payload[:min(len(req.Payload), c.chunk)]
	start := &rpcpb.InvokeStart{
		RequestId: req.RequestID, AccountId: req.AccountID, FunctionName: req.FunctionName,
		Version: req.Version, Revision: req.Revision, Config: req.Config, InvokedArn: req.InvokedARN,
		ClientContext: req.ClientContext, Tail: req.Tail, Mode: mode,
		PayloadSize: uint32(len(req.Payload)), Payload: first,
	}
	client := rpcpb.NewInvokeClient(cc)
	if len(first) == len(req.Payload) {
		// The whole payload in one message, sent with the end of the
		// request stream: one write. An error here means the request was
		// not sent (the stream failed to open or to take it).
		var p peer.Peer
		reply, err := client.InvokeWhole(ctx, start, grpc.MaxCallRecvMsgSize(maxReplyBytes), grpc.Peer(&p))
		if err != nil {
			if p.Addr == nil {
				// gRPC sets the peer once it has made a transport stream
				// for the call; without one nothing left this node (the
				// callee went away between the check above and the call,
				// or turned the stream away unprocessed with GOAWAY and
				// the transparent retry found no connection).
				return nil, refusal{}, false, fmt.Errorf("%w: %s: %v", errUnreachable, id, err)
			}
			return nil, refusal{}, true, unknownOutcome(id, req.RequestID, err)
		}
		return c.finish(nil, reply, id, req)
	}
	stream, err := client.Invoke(ctx)
	if err != nil {
		return nil, refusal{}, false, fmt.Errorf("%w: %s: %v", errUnreachable, id, err)
	}
	if err := stream.Send(&rpcpb.InvokeFrame{Frame: &rpcpb.InvokeFrame_Start{Start: start}}); err != nil {
		// The stream died before the start frame was queued: the callee
		// cannot have decoded it.
		return nil, refusal{}, false, fmt.Errorf("%w: %s: %v", errUnreachable, id, err)
	}
	unknown := func(cause error) (*lambdaapi.InvokeResult, refusal, bool, error) {
		return nil, refusal{}, true, unknownOutcome(id, req.RequestID, cause)
	}
	if rest := req.Payload[len(first):]; len(rest) > 0 {
		// A large payload moves only once the callee agreed to take it.
		reply, err := stream.Recv()
		if err != nil {
			return unknown(err)
		}
		if _, ok := reply.Reply.(*rpcpb.InvokeReply_Continue); !ok {
			return c.finish(stream, reply, id, req)
		}
		for len(rest) > 0 {
			n := min(len(rest), c.chunk)
			if err := stream.Send(&rpcpb.InvokeFrame{Frame: &rpcpb.InvokeFrame_Chunk{Chunk: rest[:n]}}); err != nil {
				return unknown(err)
			}
			rest = rest[n:]
		}
	}
	if err := stream.CloseSend(); err != nil {
		return unknown(err)
	}
	reply, err := stream.Recv()
	if err != nil {
		return unknown(err)
	}
	return c.finish(stream, reply, id, req)
}

// finish reads the callee's answer that begins with reply; stream is nil
// for a unary call, whose reply holds the whole response.
func (c *remoteInvoker) finish(stream interface {
	Recv() (*rpcpb.InvokeReply, error)
}, reply *rpcpb.InvokeReply, id string, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, refusal, bool, error) {
	switch r := reply.Reply.(type) {
	case *rpcpb.InvokeReply_Refused:
		return nil, refuse(r.Refused.Reason, r.Refused.Message), true, nil
	case *rpcpb.InvokeReply_Error:
		e := r.Error
		return nil, refusal{}, true, &lambdaapi.Error{Status: int(e.Status), Type: e.Type, Message: e.Message, Reason: e.Reason, RetryAfter: int(e.RetryAfter)}
	case *rpcpb.InvokeReply_Result:
		h := r.Result
		if h.PayloadSize > maxReplyBytes || len(h.Payload) > int(h.PayloadSize) {
			return nil, refusal{}, true, unknownOutcome(id, req.RequestID,
				fmt.Errorf("malformed response head: %d bytes announced, %d inline", h.PayloadSize, len(h.Payload)))
		}
		payload := make([]byte, 0, h.PayloadSize)
		payload = append(payload, h.Payload...)
		for len(payload) < int(h.PayloadSize) && stream != nil {
			more, err := stream.Recv()
			if err != nil {
				return nil, refusal{}, true, unknownOutcome(id, req.RequestID, fmt.Errorf("response cut short: %w", err))
			}
			payload = append(payload, more.GetChunk()...)
		}
		if len(payload) != int(h.PayloadSize) {
			// A unary reply that does not hold its whole payload, or chunks
			// past the size announced: not the response the function gave.
			return nil, refusal{}, true, unknownOutcome(id, req.RequestID,
				fmt.Errorf("response of %d bytes where %d were announced", len(payload), h.PayloadSize))
		}
		return &lambdaapi.InvokeResult{
			Payload: payload, FunctionError: h.FunctionError, LogTail: h.LogTail, Node: h.Node,
			ColdStart: h.ColdStart, InitDuration: time.Duration(h.InitDurationNs), Duration: time.Duration(h.DurationNs),
		}, refusal{}, true, nil
	}
	return nil, refusal{}, true, unknownOutcome(id, req.RequestID, fmt.Errorf("unexpected reply %T", reply.Reply))
}
