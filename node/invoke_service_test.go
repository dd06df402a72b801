package node

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// fakeInvokeStream is the server side of an Invoke stream that plays
// frames and then ends the caller's side (io.EOF).
type fakeInvokeStream struct {
	grpc.ServerStream
	frames []*rpcpb.InvokeFrame
	sent   []*rpcpb.InvokeReply
}

func (s *fakeInvokeStream) Context() context.Context { return context.Background() }

func (s *fakeInvokeStream) Recv() (*rpcpb.InvokeFrame, error) {
	if len(s.frames) == 0 {
		return nil, io.EOF
	}
	f := s.frames[0]
	s.frames = s.frames[1:]
	return f, nil
}

func (s *fakeInvokeStream) Send(r *rpcpb.InvokeReply) error {
	s.sent = append(s.sent, r)
	return nil
}

// TestInvokeServiceRejectsMalformedStreams: a peer's malformed Invoke
// stream is InvalidArgument and runs nothing (the router has no pool).
func TestInvokeServiceRejectsMalformedStreams(t *testing.T) {
	start := func(announced int, payload string) *rpcpb.InvokeFrame {
		return &rpcpb.InvokeFrame{Frame: &rpcpb.InvokeFrame_Start{Start: &rpcpb.InvokeStart{
			AccountId: "123456789012", FunctionName: "f", Version: "1", Config: &fsmpb.FunctionConfig{},
			Mode: rpcpb.InvokeMode_INVOKE_MODE_QUEUE, PayloadSize: uint32(announced), Payload: []byte(payload)}}}
	}
	chunk := func(b string) *rpcpb.InvokeFrame {
		return &rpcpb.InvokeFrame{Frame: &rpcpb.InvokeFrame_Chunk{Chunk: []byte(b)}}
	}
	noConfig := start(2, "{}")
	noConfig.GetStart().Config = nil
	for _, tc := range []struct {
		name   string
		frames []*rpcpb.InvokeFrame
	}{
		{"first frame is a chunk", []*rpcpb.InvokeFrame{chunk("{}")}},
		{"no config", []*rpcpb.InvokeFrame{noConfig}},
		{"more inline than announced", []*rpcpb.InvokeFrame{start(1, "{}")}},
		{"more chunked than announced", []*rpcpb.InvokeFrame{start(4, "{"), chunk("}}}}")}},
		{"stream ends before the announced payload", []*rpcpb.InvokeFrame{start(4, "{"), chunk("}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &router{self: "n1", cfg: DefaultRoutingConfig(),
				health: &nodeHealth{self: "n1", draining: func() bool { return false }}}
			err := (&invokeService{r: r}).Invoke(&fakeInvokeStream{frames: tc.frames})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
}
