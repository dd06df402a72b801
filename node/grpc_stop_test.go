package node

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// slowInvoke answers InvokeWhole with a refusal once released.
type slowInvoke struct {
	rpcpb.UnimplementedInvokeServer
	started, release chan struct{}
}

func (s *slowInvoke) InvokeWhole(context.Context, *rpcpb.InvokeStart) (*rpcpb.InvokeReply, error) {
	close(s.started)
	<-s.release
	return &rpcpb.InvokeReply{Reply: &rpcpb.InvokeReply_Refused{Refused: &rpcpb.InvokeRefusal{
		Reason: rpcpb.RefusalReason_REFUSAL_REASON_DRAINING, Message: "draining"}}}, nil
}

// TestStoppingNodeAnswersRPCsInProgress: a node that stops lets the
// node-to-node RPCs in progress deliver their answer (on a draining node,
// a refusal the caller acts on) instead of cutting them, which would leave
// a forwarding caller only "outcome unknown" to report.
func TestStoppingNodeAnswersRPCsInProgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := &slowInvoke{started: make(chan struct{}), release: make(chan struct{})}
	rpcpb.RegisterInvokeServer(srv, svc)
	go srv.Serve(ln)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	type answer struct {
		reply *rpcpb.InvokeReply
		err   error
	}
	got := make(chan answer, 1)
	go func() {
		r, err := rpcpb.NewInvokeClient(cc).InvokeWhole(context.Background(), &rpcpb.InvokeStart{})
		got <- answer{r, err}
	}()
	<-svc.started
	stopped := make(chan struct{})
	go func() {
		stopGRPCServer(srv, time.Minute)
		close(stopped)
	}()
	close(svc.release)
	a := <-got
	if a.err != nil || a.reply.GetRefused().GetReason() != rpcpb.RefusalReason_REFUSAL_REASON_DRAINING {
		t.Fatalf("the RPC in progress when the server stopped got %v, %v; want its refusal", a.reply, a.err)
	}
	<-stopped
}
