package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// NewGRPCServer returns a gRPC server for node-to-node services with the
// interceptor chain every call passes: panic recovery, slog logging,
// Prometheus metrics (registered on reg when non-nil) and authentication
// (the cluster token; the TLS handshake already checked the certificate).
func NewGRPCServer(sec *Security, log *slog.Logger, reg prometheus.Registerer) *grpc.Server {
	log = log.With("component", "grpc")
	metrics := grpcprom.NewServerMetrics()
	if reg != nil {
		if err := reg.Register(metrics); err != nil {
			log.Warn("gRPC metrics not registered", "err", err)
		}
	}
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	levels := logging.WithLevels(func(c codes.Code) logging.Level {
		switch c {
		case codes.OK, codes.Canceled:
			return logging.LevelDebug
		case codes.Internal, codes.Unknown, codes.DataLoss:
			return logging.LevelError
		}
		return logging.LevelWarn
	})
	recover := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in gRPC handler", "panic", p)
		return status.Error(codes.Internal, "internal error")
	})
	authenticate := func(ctx context.Context) (context.Context, error) {
		if sec.Insecure() {
			return ctx, nil
		}
		tok, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, err
		}
		if !sec.CheckToken(tok) {
			return nil, status.Error(codes.Unauthenticated, "bad cluster token")
		}
		return ctx, nil
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recover),
			logging.UnaryServerInterceptor(logger, levels),
			metrics.UnaryServerInterceptor(),
			auth.UnaryServerInterceptor(authenticate),
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recover),
			logging.StreamServerInterceptor(logger, levels),
			metrics.StreamServerInterceptor(),
			auth.StreamServerInterceptor(authenticate),
		),
	}
	if tc := sec.ServerTLS(); tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	opts = append(opts,
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}))
	return grpc.NewServer(opts...)
}

// Keepalive between nodes. A peer cut off without a reset (a partition, a
// pulled cable) otherwise leaves calls to it waiting for their whole
// deadline, and a forwarded invocation's deadline is the function's timeout.
// Both ends ping a connection idle for keepaliveTime and close it when a
// ping goes unanswered for keepaliveTimeout; calls on it then fail with
// codes.Unavailable, which transportError reports as ErrTimeout (outcome
// unknown). gRPC also sets TCP_USER_TIMEOUT to keepaliveTimeout, so when the
// cut drops a call's own unacknowledged bytes the kernel closes the
// connection within keepaliveTimeout, before any ping is due.
const (
	// keepaliveTime is gRPC's floor for client pings (smaller values are
	// raised to it with a warning).
	keepaliveTime = 10 * time.Second
	// keepaliveTimeout leaves a loaded peer time to answer a ping.
	keepaliveTimeout = 3 * time.Second
	// keepaliveMinTime is the most frequent ping a server tolerates before
	// it closes the connection with "too many pings"; below keepaliveTime
	// so clients with jittery timers are never punished.
	keepaliveMinTime = keepaliveTime / 2
)

// tokenCreds attaches the cluster token to every call.
type tokenCreds struct{ token string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}
func (t tokenCreds) RequireTransportSecurity() bool { return true }

// Dialer keeps one gRPC client connection per peer address.
type Dialer struct {
	sec   *Security
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewDialer returns a Dialer that authenticates with sec.
func NewDialer(sec *Security) *Dialer {
	return &Dialer{sec: sec, conns: map[string]*grpc.ClientConn{}}
}

// Client returns the Cluster client for a peer's gRPC address.
func (d *Dialer) Client(addr string) (rpcpb.ClusterClient, error) {
	cc, err := d.Conn(addr)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewClusterClient(cc), nil
}

// Conn returns the authenticated connection to a peer's gRPC address, for
// clients of other node-to-node services. Connections are shared and
// closed by Close.
func (d *Dialer) Conn(addr string) (*grpc.ClientConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cc, ok := d.conns[addr]; ok {
		return cc, nil
	}
	opts := []grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true})}
	if d.sec.Insecure() {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(d.sec.ClientTLS(addr))),
			grpc.WithPerRPCCredentials(tokenCreds{token: d.sec.Token()}))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	d.conns[addr] = cc
	return cc, nil
}

// Close closes every connection.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for addr, cc := range d.conns {
		errs = append(errs, cc.Close())
		delete(d.conns, addr)
	}
	return errors.Join(errs...)
}

// errorToPB carries err across the wire: sentinel errors by kind, fsm
// refusals with their code and message.
func errorToPB(err error) *rpcpb.Error {
	if err == nil {
		return nil
	}
	var le *LeaderError
	var fe *fsm.Error
	switch {
	case errors.As(err, &le):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_NOT_LEADER, Message: err.Error(),
			LeaderId: le.LeaderID, LeaderAddr: le.LeaderAddr}
	case errors.As(err, &fe):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_FSM, Message: fe.Message, FsmCode: int32(fe.Code)}
	case errors.Is(err, ErrNotLeader):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_NOT_LEADER, Message: err.Error()}
	case errors.Is(err, ErrNoLeader):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_NO_LEADER, Message: err.Error()}
	case errors.Is(err, ErrTimeout):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_TIMEOUT, Message: err.Error()}
	case errors.Is(err, ErrLeadershipLost):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_LEADERSHIP_LOST, Message: err.Error()}
	case errors.Is(err, ErrShutdown):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_SHUTDOWN, Message: err.Error()}
	case errors.Is(err, ErrRefused):
		return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_REFUSED, Message: err.Error()}
	}
	return &rpcpb.Error{Kind: rpcpb.ErrorKind_ERROR_KIND_OTHER, Message: err.Error()}
}

// ErrRefused: the leader refused a membership request (for example
// force-leave of a node that is alive).
var ErrRefused = errors.New("cluster: refused")

// ErrRemote is an error the peer reported that has no sentinel here.
var ErrRemote = errors.New("cluster: remote error")

// errorFromPB is errorToPB's inverse: callers see the same errors a local
// call would return.
func errorFromPB(e *rpcpb.Error) error {
	if e == nil || e.Kind == rpcpb.ErrorKind_ERROR_KIND_NONE {
		return nil
	}
	switch e.Kind {
	case rpcpb.ErrorKind_ERROR_KIND_NOT_LEADER:
		return &LeaderError{LeaderID: e.LeaderId, LeaderAddr: e.LeaderAddr}
	case rpcpb.ErrorKind_ERROR_KIND_FSM:
		return &fsm.Error{Code: fsm.Code(e.FsmCode), Message: e.Message}
	case rpcpb.ErrorKind_ERROR_KIND_NO_LEADER:
		return ErrNoLeader
	case rpcpb.ErrorKind_ERROR_KIND_TIMEOUT:
		return ErrTimeout
	case rpcpb.ErrorKind_ERROR_KIND_LEADERSHIP_LOST:
		return ErrLeadershipLost
	case rpcpb.ErrorKind_ERROR_KIND_SHUTDOWN:
		// The peer is going away; to the caller that is a leader change.
		return ErrNoLeader
	case rpcpb.ErrorKind_ERROR_KIND_REFUSED:
		return fmt.Errorf("%w: %s", ErrRefused, strings.TrimPrefix(e.Message, ErrRefused.Error()+": "))
	}
	return fmt.Errorf("%w: %s", ErrRemote, e.Message)
}

// transportError translates a failed RPC (not an in-band error).
// sent reports whether the request may have reached the peer.
func transportError(err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("%w: %s", ErrUnauthenticated, st.Message())
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		// The peer may or may not have acted: outcome unknown.
		return fmt.Errorf("%w: %s", ErrTimeout, st.Message())
	}
	return fmt.Errorf("%w: %s: %s", ErrRemote, st.Code(), st.Message())
}
