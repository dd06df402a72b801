package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// clusterParts are the Agent's cluster fields.
type clusterParts struct {
	sec        *cluster.Security
	raftLayer  raft.StreamLayer
	grpcLn     net.Listener
	grpcSrv    *grpc.Server
	gossip     *cluster.Gossip
	dialer     *cluster.Dialer
	forwarder  *cluster.Forwarder
	metrics    *prometheus.Registry
	leaderMu   sync.Mutex
	isLeader   bool
	reconciler *cluster.Reconciler

	drain    drainState
	leaving  atomic.Bool
	left     chan struct{}
	leftOnce sync.Once
}

func (p *clusterParts) init() {
	p.left = make(chan struct{})
	p.metrics = prometheus.NewRegistry()
}

// MetricsRegistry holds the agent's Prometheus metrics (gRPC server
// metrics so far); the HTTP layer serves it at /metrics.
func (a *Agent) MetricsRegistry() *prometheus.Registry { return a.metrics }

// ClusterConfig is the agent's cluster membership configuration: gossip,
// node-to-node gRPC and its security, the server/worker role and the
// leader's reconcile loop.
type ClusterConfig struct {
	// Server makes this node a Raft voter; other nodes are workers that
	// replicate the metadata as non-voters.
	Server bool
	// BootstrapExpect (servers only) forms the first quorum once this many
	// servers have met through gossip. 0: no automatic bootstrap (dev mode
	// and Config.Bootstrap form a single-server cluster instead).
	BootstrapExpect int
	// Join lists gossip addresses to join at start (retried until one answers).
	Join []string
	// GossipAddr is where memberlist listens (UDP and TCP); GossipAdvertise
	// is what peers dial (empty: GossipAddr, or a private IP when it is
	// 0.0.0.0).
	GossipAddr      string
	GossipAdvertise string
	// GRPCAddr is where node-to-node gRPC listens; GRPCAdvertise is what
	// peers dial (empty: derived like GossipAdvertise).
	GRPCAddr      string
	GRPCAdvertise string
	// HTTPAdvertise is the HTTP address other nodes and clients use
	// (empty: Config.HTTPAddr).
	HTTPAdvertise string
	// TLSCAFile, TLSCertFile and TLSKeyFile are the PEM files of the cluster
	// CA and this node's certificate (`stoke tls`). Without them node-to-node
	// traffic uses a CA derived from the cluster key.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	// ReapTimeout is how long a dead node stays in Raft and the node
	// records before the leader removes it.
	ReapTimeout time.Duration
	// ReconcileInterval is how often the leader reconciles besides the
	// passes membership events trigger.
	ReconcileInterval time.Duration
	// DrainTimeout bounds how long a leaving node waits for in-flight work.
	DrainTimeout time.Duration
	// MemoryMB and CPUs are the capacity this node advertises (0: detect).
	MemoryMB int64
	CPUs     int
	// BuildVersion is the version gossiped to peers.
	BuildVersion string
	// TuneGossip, if set, adjusts the gossip configuration (tests shorten
	// memberlist's timers with it).
	TuneGossip func(*cluster.GossipConfig)
}

// DefaultClusterConfig returns production settings.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		GossipAddr:        "0.0.0.0:7946",
		GRPCAddr:          "0.0.0.0:9100",
		ReapTimeout:       72 * time.Hour,
		ReconcileInterval: 30 * time.Second,
		DrainTimeout:      30 * time.Second,
		BuildVersion:      "dev",
	}
}

func (c *ClusterConfig) validate(dev bool) error {
	for name, addr := range map[string]string{"GossipAddr": c.GossipAddr, "GRPCAddr": c.GRPCAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("node: %s %q: %w", name, addr, err)
		}
	}
	switch {
	case c.BootstrapExpect < 0:
		return errors.New("node: BootstrapExpect must not be negative")
	case c.BootstrapExpect > 0 && !c.Server:
		return errors.New("node: only servers take BootstrapExpect")
	case c.ReapTimeout <= 0 || c.ReconcileInterval <= 0 || c.DrainTimeout <= 0:
		return errors.New("node: ReapTimeout, ReconcileInterval and DrainTimeout must be positive")
	}
	files := 0
	for _, f := range []string{c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile} {
		if f != "" {
			files++
		}
	}
	if files != 0 && files != 3 {
		return errors.New("node: give all of TLS CA, certificate and key, or none")
	}
	if dev && files == 3 {
		return errors.New("node: development mode is plaintext; drop the TLS files or --dev")
	}
	return nil
}

// role is this node's cluster role.
func (c *ClusterConfig) role() cluster.Role {
	if c.Server {
		return cluster.RoleServer
	}
	return cluster.RoleWorker
}

// initCluster runs before Raft starts: it sets up node-to-node security,
// the Raft stream layer, the gRPC listener and gossip, and points rc at
// the stream layer.
func (a *Agent) initCluster(rc *cluster.RaftConfig) error {
	cc := &a.cfg.Cluster
	if a.cfg.Dev {
		// One node on loopback (make run): a single voter.
		cc.Server = true
	}
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{
		NodeID: a.nodeID, CAFile: cc.TLSCAFile, CertFile: cc.TLSCertFile, KeyFile: cc.TLSKeyFile,
		DerivedCASeed: a.secret.Derive("tls-ca/v1"), Token: a.secret.Derive("rpc-token/v1"), Insecure: a.cfg.Dev,
	})
	if err != nil {
		return err
	}
	a.sec = sec
	if sec.Insecure() {
		a.log.Warn("node-to-node gRPC and Raft are plaintext and unauthenticated (development mode)")
	}

	fallbackHost, err := advertiseHost(cc.GossipAdvertise, cc.GossipAddr)
	if err != nil {
		return err
	}
	raftLn, err := net.Listen("tcp", a.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("node: listen Raft on %s: %w", a.cfg.RaftAddr, err)
	}
	raftAdv := a.cfg.RaftAdvertise
	if raftAdv == "" {
		raftAdv = advertised(raftLn.Addr().String(), fallbackHost)
	}
	if a.raftLayer, err = sec.RaftStreamLayer(raftLn, raftAdv); err != nil {
		raftLn.Close()
		return err
	}
	rc.StreamLayer = a.raftLayer

	if a.grpcLn, err = net.Listen("tcp", cc.GRPCAddr); err != nil {
		a.raftLayer.Close()
		return fmt.Errorf("node: listen gRPC on %s: %w", cc.GRPCAddr, err)
	}
	grpcAdv := cc.GRPCAdvertise
	if grpcAdv == "" {
		grpcAdv = advertised(a.grpcLn.Addr().String(), fallbackHost)
	}
	httpAdv := cc.HTTPAdvertise
	if httpAdv == "" {
		httpAdv = advertised(a.HTTPAddr(), fallbackHost)
	}

	gc := cluster.DefaultGossipConfig()
	gc.Meta = cluster.NodeMeta{ID: a.nodeID, Role: cc.role(), HTTPAddr: httpAdv, GRPCAddr: grpcAdv,
		RaftAddr: raftAdv, MemoryMB: cc.MemoryMB, CPUs: cc.CPUs, BuildVersion: cc.BuildVersion}
	if gc.Meta.MemoryMB == 0 {
		gc.Meta.MemoryMB = systemMemoryMB()
	}
	if gc.Meta.CPUs == 0 {
		gc.Meta.CPUs = numCPU()
	}
	gc.BindAddr, gc.AdvertiseAddr, gc.Join = cc.GossipAddr, cc.GossipAdvertise, cc.Join
	if !a.cfg.Dev {
		gc.SecretKey = a.secret.Derive("gossip/v1")
	}
	gc.Logger = a.cfg.Logger
	if cc.TuneGossip != nil {
		cc.TuneGossip(&gc)
	}
	if a.gossip, err = cluster.NewGossip(gc); err != nil {
		a.grpcLn.Close()
		a.raftLayer.Close()
		return err
	}
	return nil
}

// advertiseHost is the host peers reach this machine at when a listener
// binds every interface: the gossip advertise host, the gossip bind host,
// or the first private IP.
func advertiseHost(gossipAdvertise, gossipBind string) (string, error) {
	for _, addr := range []string{gossipAdvertise, gossipBind} {
		if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !net.ParseIP(host).IsUnspecified() {
			return host, nil
		}
	}
	ip, err := sockaddr.GetPrivateIP()
	if err != nil || ip == "" {
		return "", errors.New("node: cannot pick an address to advertise; set --gossip-advertise")
	}
	return ip, nil
}

// advertised turns a bound address into one peers can dial.
func advertised(bound, fallbackHost string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort(fallbackHost, port)
	}
	return bound
}

// startCluster runs once Raft exists: gRPC serving, the forwarder, the
// reconciler and (servers) the bootstrap-expect loop.
func (a *Agent) startCluster() error {
	cc := a.cfg.Cluster
	a.dialer = cluster.NewDialer(a.sec)
	a.forwarder = cluster.NewForwarder(a.dialer, a.grpcAddrOf)
	a.meta.SetForwarder(a.forwarder)

	rcfg := cluster.DefaultReconcileConfig()
	rcfg.Interval, rcfg.ReapTimeout = cc.ReconcileInterval, cc.ReapTimeout
	rcfg.BootstrapExpect = max(cc.BootstrapExpect, 1)
	rcfg.Logger = a.cfg.Logger
	rcfg.Verify = func(ctx context.Context, m cluster.Member) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := a.forwarder.Status(ctx, m.GRPCAddr)
		return err
	}
	rec, err := cluster.NewReconciler(rcfg, a.raft, a.gossip)
	if err != nil {
		return err
	}
	a.leaderMu.Lock()
	a.reconciler = rec
	if a.isLeader {
		rec.Start()
	}
	a.leaderMu.Unlock()

	a.grpcSrv = cluster.NewGRPCServer(a.sec, a.cfg.Logger, a.metrics)
	rpcpb.RegisterClusterServer(a.grpcSrv, cluster.NewService(a.raft, a.leaderRemover))
	a.registerAsync(a.grpcSrv)
	rpcpb.RegisterBlobServer(a.grpcSrv, &blobService{m: a.code})
	a.registerRoutingServices(a.grpcSrv)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.grpcSrv.Serve(a.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("gRPC server stopped", "err", err)
		}
	}()

	if cc.Server && cc.BootstrapExpect > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		a.wg.Add(2)
		go func() {
			defer a.wg.Done()
			select {
			case <-a.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		go func() {
			defer a.wg.Done()
			defer cancel()
			status := func(ctx context.Context, m cluster.Member) (bool, error) {
				st, err := a.forwarder.Status(ctx, m.GRPCAddr)
				if err != nil {
					return false, err
				}
				return st.HasState || st.LeaderId != "", nil
			}
			if err := cluster.BootstrapExpect(ctx, cc.BootstrapExpect, a.raft, a.gossip, status, a.cfg.Logger); err != nil && ctx.Err() == nil {
				a.log.Error("bootstrap-expect stopped", "err", err)
			}
		}()
	}
	a.wg.Add(1)
	go a.forgetReaped()
	a.startRouting(a.dialer)
	return nil
}

// clusterLeadership starts the reconciler on gaining leadership and stops
// it on losing it. Called from Raft's leadership goroutine; Stop waits at
// most one pass, which is bounded by its timeout.
func (a *Agent) clusterLeadership(isLeader bool) {
	a.leaderMu.Lock()
	defer a.leaderMu.Unlock()
	a.isLeader = isLeader
	if a.reconciler == nil {
		return
	}
	if isLeader {
		a.reconciler.Start()
	} else {
		a.reconciler.Stop()
	}
}

func (a *Agent) leaderRemover() cluster.PeerRemover {
	a.leaderMu.Lock()
	defer a.leaderMu.Unlock()
	if !a.isLeader || a.reconciler == nil {
		return nil
	}
	return a.reconciler
}

// grpcAddrOf maps a node id to its gRPC address: gossip first (current),
// then the committed node records.
func (a *Agent) grpcAddrOf(id string) (string, bool) {
	if m, ok := a.gossip.Member(id); ok && m.GRPCAddr != "" {
		return m.GRPCAddr, true
	}
	if n := a.meta.View().Node(id); n != nil && n.GrpcAddr != "" {
		return n.GrpcAddr, true
	}
	return "", false
}

// forgetReaped drops dead and left members from the local gossip table
// once the leader has removed them from the node records and Raft, so
// every node's member list converges with the committed membership.
func (a *Agent) forgetReaped() {
	defer a.wg.Done()
	events, unsubscribe := a.gossip.Subscribe(16)
	defer unsubscribe()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-events:
		case <-tick.C:
		}
		servers, err := a.raft.Configuration()
		if err != nil {
			continue
		}
		inRaft := map[string]bool{}
		for _, s := range servers {
			inRaft[s.ID] = true
		}
		v := a.meta.View()
		for _, m := range a.gossip.Members() {
			if !m.Alive() && !inRaft[m.ID] && v.Node(m.ID) == nil {
				a.gossip.Forget(m.ID)
			}
		}
	}
}

// stopCluster stops the cluster parts before Raft shuts down. Gossip stops
// without a goodbye (peers see a failure) unless Leave already ran.
func (a *Agent) stopCluster() {
	a.leaderMu.Lock()
	rec := a.reconciler
	a.leaderMu.Unlock()
	if rec != nil {
		rec.Stop()
	}
	if a.grpcSrv != nil {
		stopGRPCServer(a.grpcSrv, grpcGracefulStopWait)
	}
	if a.grpcLn != nil {
		a.grpcLn.Close()
	}
	if a.gossip != nil {
		_ = a.gossip.Shutdown()
	}
}

// grpcGracefulStopWait bounds how long a stopping node waits for the
// node-to-node RPCs in progress to answer before it cuts them.
const grpcGracefulStopWait = 2 * time.Second

// stopGRPCServer stops s gracefully: the RPCs in progress get their answer
// (on a draining node these are refusals and short control calls) and new
// ones are turned away with GOAWAY, which a caller sees as "not sent" and
// retries elsewhere. A hard stop cut them mid-answer instead, and a caller
// forwarding an invocation could then only report that its outcome was
// unknown (a 500 for a call that never ran: the rolling-restart chaos
// scenario caught one). Streams still open after wait are cut.
func stopGRPCServer(s *grpc.Server, wait time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.Stop()
		<-done
	}
}

// closeClusterClients runs after Raft shut down.
func (a *Agent) closeClusterClients() {
	if a.dialer != nil {
		_ = a.dialer.Close()
	}
}

// Gossip is the node's membership view: Members, IsAlive (cheap, for the
// invoke path) and Subscribe. It is never nil on a running agent.
func (a *Agent) Gossip() *cluster.Gossip { return a.gossip }

// SetLoad publishes this node's load summary to the cluster (rate-bounded
// by gossip). The draining flag is the agent's own and overrides l's.
func (a *Agent) SetLoad(l cluster.LoadSummary) {
	l.Draining = a.Draining()
	a.gossip.SetLoad(l)
}

// GRPCAddr is the address node-to-node gRPC listens on.
func (a *Agent) GRPCAddr() string { return a.grpcLn.Addr().String() }

// GossipAddr is the address peers gossip with this node at.
func (a *Agent) GossipAddr() string { return a.gossip.Addr() }
