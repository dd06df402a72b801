package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/httpguard"
	"github.com/stokehq/stoke/node/seal"
)

// Agent is one Stoke node: Raft replica, HTTP API and (in later layers)
// gossip, gRPC and the worker runtime.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	secret seal.Secret
	sealer *seal.Sealer
	raft   *cluster.Raft
	meta   *Metadata

	httpLn  net.Listener
	httpSrv *http.Server
	mux     *http.ServeMux

	bootstrapOnce sync.Mutex
	wg            sync.WaitGroup
	stop          chan struct{}
	closeOnce     sync.Once
	// wired is closed once New has built what onLeadership uses beyond
	// the reconciler (Raft and metadata handles, the routing parts): Raft
	// starts before them, and a lone node may win its election first.
	wired chan struct{}

	clusterParts // gossip, gRPC, reconcile, leave (cluster.go, leave.go)
	apiParts     // blob store, sandbox pool, Lambda API (api.go)
	routingParts // ring, router, leases, provisioned concurrency (routing.go)
}

// New opens the node's data dir and starts Raft and the HTTP listener.
// Serving begins with Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	nodeID, err := nodeIDFromDir(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	secret, created, err := seal.LoadOrCreate(cfg.clusterKeyFile())
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "agent", "node", nodeID),
		nodeID: nodeID,
		secret: secret,
		sealer: seal.NewSealer(secret),
		stop:   make(chan struct{}),
		wired:  make(chan struct{}),
	}
	a.clusterParts.init()
	if created {
		a.log.Info("created a new cluster key; give the same key to every node that joins", "file", cfg.clusterKeyFile())
	}
	if cfg.NoAuth {
		a.log.Warn("SigV4 authentication is DISABLED (--no-auth): anyone who can reach the API port controls every function")
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: listen HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	a.httpLn = httpguard.NewListener(ln, cfg.HTTP, a.log.With("component", "http"))

	rc := cluster.DefaultRaftConfig()
	rc.NodeID = nodeID
	rc.DataDir = cfg.DataDir
	rc.BindAddr = cfg.RaftAddr
	rc.AdvertiseAddr = cfg.RaftAdvertise
	rc.Bootstrap = cfg.Bootstrap
	rc.Logger = cfg.Logger
	if cfg.RaftHeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
		rc.LeaderLeaseTimeout = cfg.RaftHeartbeatTimeout / 2
	}
	if cfg.RaftElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.RaftElectionTimeout
	}
	rc.OnLeadership = a.onLeadership
	if err := a.initCluster(&rc); err != nil {
		a.httpLn.Close()
		return nil, err
	}
	a.raft, err = cluster.NewRaft(rc, fsm.New())
	if err != nil {
		a.stopCluster()
		a.httpLn.Close()
		return nil, err
	}
	a.meta = NewMetadata(a.raft, nil)

	a.mux = http.NewServeMux()
	a.mux.HandleFunc("GET /health", a.handleHealth)
	a.mux.HandleFunc("GET /ready", a.handleReady)
	if err := a.initAPI(); err != nil {
		close(a.stop) // releases an onLeadership waiting for wired
		a.stopCluster()
		a.raft.Shutdown()
		a.httpLn.Close()
		return nil, err
	}
	close(a.wired)
	a.registerClusterAdmin()
	a.registerLogs()
	a.registerStatus()
	a.httpSrv = &http.Server{
		Handler:           cfg.HTTP.BodyDeadlines(a.mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          cluster.NewStdLoggerAt(a.log.With("component", "http"), slog.LevelWarn),
	}
	if err := a.startCluster(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// NodeID is this node's stable id.
func (a *Agent) NodeID() string { return a.nodeID }

// HTTPAddr is the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

// Metadata is the node's replicated-state facade.
func (a *Agent) Metadata() *Metadata { return a.meta }

// Sealer seals and opens secrets with the cluster data key.
func (a *Agent) Sealer() *seal.Sealer { return a.sealer }

// waitWired waits until New has built what onLeadership needs beyond the
// reconciler; false when New failed first. Once wired, it never waits.
func (a *Agent) waitWired() bool {
	select {
	case <-a.wired:
		return true
	default:
	}
	select {
	case <-a.wired:
		return true
	case <-a.stop:
		return false
	}
}

// onLeadership runs on raft's leadership goroutine; it must not block it
// (it waits only for New to finish wiring a node that won its election
// early).
func (a *Agent) onLeadership(isLeader bool) {
	a.clusterLeadership(isLeader)
	if !a.waitWired() {
		return
	}
	a.routingLeadership(isLeader)
	if !isLeader {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.bootstrapOnce.Lock()
		defer a.bootstrapOnce.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ctx, stop := a.untilStop(ctx)
		defer stop()
		if err := a.ensureBootstrap(ctx); err != nil {
			a.log.Error("bootstrap of the admin account failed; will retry on the next leadership", "err", err)
		}
	}()
}

// Run serves until ctx ends, then shuts the node down gracefully.
func (a *Agent) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.httpSrv.Serve(a.httpLn) }()
	a.wg.Add(1)
	go a.watchCredentials()
	a.wg.Add(1)
	go a.retireReplacedSandboxes()
	a.log.Info("stoke agent started", "http", "http://"+a.HTTPAddr(), "raft", a.raft.Addr(), "grpc", a.GRPCAddr(),
		"gossip", a.GossipAddr(), "role", a.cfg.Cluster.role(), "security", a.sec.Mode(), "data_dir", a.cfg.DataDir)
	if a.cfg.Console != nil {
		fmt.Fprintf(a.cfg.Console, "\nStoke is running.\n  endpoint:    http://%s\n  credentials: %s (print them with: stoke credentials --data-dir %s)\n\n",
			a.HTTPAddr(), a.cfg.credentialsFile(), a.cfg.DataDir)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case <-a.left:
	}
	if cerr := a.Close(); err == nil || errors.Is(err, http.ErrServerClosed) {
		err = cerr
	}
	return err
}

// Close stops serving, waits for in-flight requests up to ShutdownTimeout
// and releases every resource. A leader first hands leadership to another
// voter. It is safe to call more than once.
func (a *Agent) Close() error {
	var err error
	a.closeOnce.Do(func() {
		close(a.stop)
		drained := a.beginShutdownDrain()
		a.handOffLeadership()
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		if e := a.httpSrv.Shutdown(ctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = e
		}
		a.httpLn.Close()
		a.waitDrained(drained)
		a.stopRouting()
		a.closeAPI()
		a.stopCluster()
		a.wg.Wait()
		if e := a.raft.Shutdown(); e != nil && err == nil {
			err = e
		}
		a.closeClusterClients()
	})
	return err
}

func (a *Agent) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"ok","node":%q}`+"\n", a.nodeID)
}

// handleReady answers 200 when the cluster has a leader and this replica
// has caught up with the commit index it last heard of.
func (a *Agent) handleReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	leaderID, _ := a.raft.Leader()
	stats := a.raft.Stats()
	applied := a.raft.Store().AppliedIndex()
	ready := leaderID != "" && stats["commit_index"] != "" && stats["applied_index"] == stats["commit_index"]
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"ready":%t,"leader":%q,"state":%q,"applied_index":%d,"commit_index":%q}`+"\n",
		ready, leaderID, a.raft.State(), applied, stats["commit_index"])
}
