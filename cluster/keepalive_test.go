package cluster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// TestCallToSilentlyCutPeerFails: a call in flight to a peer whose
// connection stops carrying bytes, without any reset or close, fails with
// ErrTimeout (outcome unknown) long before its own deadline, and calls made
// once the path carries bytes again succeed.
func TestCallToSilentlyCutPeerFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a keepalive to expire; skipped with -short")
	}
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := &slowPeer{started: make(chan struct{}, 1)}
	srv := cluster.NewGRPCServer(sec, clustertest.Logger(t, slog.LevelError), nil)
	rpcpb.RegisterClusterServer(srv, peer)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	proxy := startBlackholeProxy(t, ln.Addr().String())
	dialer := cluster.NewDialer(sec)
	t.Cleanup(func() { dialer.Close() })
	fwd := cluster.NewForwarder(dialer, func(string) (string, bool) { return proxy.Addr(), true })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := fwd.Status(ctx, proxy.Addr()); err != nil {
		t.Fatalf("status through the proxy before the cut: %v", err)
	}
	cancel()

	// The call's own deadline is far away: only failure detection can end
	// it early. The peer holds it until its context ends.
	callCtx, cancelCall := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelCall()
	done := make(chan error, 1)
	go func() {
		_, err := fwd.ForwardApply(callCtx, "peer", "", []byte("entry"))
		done <- err
	}()
	select {
	case <-peer.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the call never reached the peer")
	}
	proxy.Blackhole()

	const ceiling = 2 * time.Minute // generous; the bound is keepalive time + timeout
	select {
	case err := <-done:
		if !errors.Is(err, cluster.ErrTimeout) {
			t.Fatalf("call to a silently cut peer: %v, want ErrTimeout (outcome unknown)", err)
		}
	case <-time.After(ceiling):
		t.Fatalf("call to a silently cut peer still hanging after %v", ceiling)
	}

	proxy.Heal()
	clustertest.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := fwd.Status(ctx, proxy.Addr())
		return err
	})
}

// slowPeer answers Status at once and holds Apply until its context ends
// (a long invocation, say).
type slowPeer struct {
	rpcpb.UnimplementedClusterServer
	started chan struct{}
}

func (p *slowPeer) Status(context.Context, *rpcpb.StatusRequest) (*rpcpb.StatusResponse, error) {
	return &rpcpb.StatusResponse{NodeId: "peer"}, nil
}

func (p *slowPeer) Apply(ctx context.Context, _ *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error) {
	select {
	case p.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// blackholeProxy forwards TCP connections to a target until Blackhole,
// after which it keeps every connection open but passes no byte in either
// direction: what a peer behind a partition looks like (no RST, no FIN).
// Connections accepted after Heal are forwarded again.
type blackholeProxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *blackholeProxy) Addr() string { return p.ln.Addr().String() }
func (p *blackholeProxy) Blackhole()   { p.cut.Store(true) }
func (p *blackholeProxy) Heal()        { p.cut.Store(false) }

func (p *blackholeProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		// A connection accepted while cut stays cut: it must not heal the
		// connection it replaces.
		cut := p.cut.Load()
		p.wg.Add(2)
		go p.pipe(in, out, cut)
		go p.pipe(out, in, cut)
	}
}

// pipe copies from src to dst, discarding what it reads while cut.
func (p *blackholeProxy) pipe(src, dst net.Conn, startCut bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	stuck := startCut
	for {
		n, err := src.Read(buf)
		if n > 0 {
			stuck = stuck || p.cut.Load()
			if !stuck {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if !stuck && errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

func (p *blackholeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
