package node

import (
	"errors"
	"io"
	"testing"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// replyStream plays the chunks that follow a result head.
type replyStream struct{ chunks [][]byte }

func (s *replyStream) Recv() (*rpcpb.InvokeReply, error) {
	if len(s.chunks) == 0 {
		return nil, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return &rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Chunk{Chunk: c}}, nil
}

// TestRemoteFinishChecksThePayloadSize: a result whose bytes do not add up
// to the size its head announced is an unknown outcome, never a result.
func TestRemoteFinishChecksThePayloadSize(t *testing.T) {
	head := func(size uint32, inline string) *rpcpb.InvokeReply {
		return &rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Result{Result: &rpcpb.InvokeResultHead{
			Node: "n2", PayloadSize: size, Payload: []byte(inline)}}}
	}
	req := &lambdaapi.InvokeRequest{RequestID: "r1"}
	for _, tc := range []struct {
		name   string
		stream *replyStream // nil: a unary reply
		reply  *rpcpb.InvokeReply
		want   string // the payload; "" when an unknown outcome is wanted
	}{
		{"unary, whole", nil, head(4, "abcd"), "abcd"},
		{"streamed, whole", &replyStream{chunks: [][]byte{[]byte("cd")}}, head(4, "ab"), "abcd"},
		{"unary, short", nil, head(4, "ab"), ""},
		{"streamed, cut short", &replyStream{}, head(4, "ab"), ""},
		{"streamed, too long", &replyStream{chunks: [][]byte{[]byte("cdef")}}, head(4, "ab"), ""},
		{"more inline than announced", nil, head(2, "abcd"), ""},
		{"announced past the reply limit", &replyStream{}, head(maxReplyBytes+1, ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stream interface {
				Recv() (*rpcpb.InvokeReply, error)
			}
			if tc.stream != nil {
				stream = tc.stream
			}
			res, ref, sent, err := (&remoteInvoker{}).finish(stream, tc.reply, "n2", req)
			if ref.refused() || !sent {
				t.Fatalf("refusal %+v, sent %v", ref, sent)
			}
			if tc.want != "" {
				if err != nil || string(res.Payload) != tc.want {
					t.Fatalf("got %v, %v; want payload %q", res, err, tc.want)
				}
				return
			}
			if !errors.Is(err, errOutcomeUnknown) || res != nil {
				t.Fatalf("got %v, %v; want an unknown outcome", res, err)
			}
		})
	}
}
