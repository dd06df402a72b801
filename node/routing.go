package node

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/rpcpb"
	"github.com/stokehq/stoke/runtime"
)

// This file wires routing into the agent: the ring, the router (the
// node's invoke path), cluster-wide admission, the load it gossips and
// provisioned concurrency, with their background loops.

// routingParts are the Agent's routing fields.
type routingParts struct {
	ring              *ringView
	health            *nodeHealth
	loads             *loadTracker
	local             *localInvoker
	router            *router
	leases            *admission.LeaseAdmitter
	coordHost         coordinatorHost
	poolLimits        *viewLimits
	ceilings          *raftCeilings
	provisioned       *provisionedReconciler
	provisionedStatus *provisionedStatus

	routingCancel context.CancelFunc
	routingWG     sync.WaitGroup
}

// runSlack is what an admitted invocation may spend besides its function
// timeout: waiting in a pool's queue, a cold start, and a second for the
// hops. A cold start is three steps each bounded by InitTimeout on its own
// (runtime's coldStart: fetching the code, starting the sandbox, the
// function's Init) plus the wait for an Init slot, bounded by InitTimeout
// too from when the code is ready (runtime's InitSlotWait default); so it
// is four InitTimeouts, not one: with one, a
// forward to a node whose cold starts were slowed by a loaded machine hit
// its deadline while the callee was still within its bounds, and the
// caller answered 500 "may or may not have completed" (found by make test
// on a loaded 2-CPU machine). The node's pool uses runtime's defaults.
func runSlack() time.Duration {
	pc := runtime.DefaultPoolConfig()
	return pc.QueueTimeout + 4*pc.InitTimeout + time.Second
}

// initRouting builds the router once the pool exists. Nothing runs until
// startRouting.
func (a *Agent) initRouting() *router {
	rc := a.cfg.Routing
	slack := runSlack()
	a.ring = newRingView(rc.Placement)
	a.local = &localInvoker{nodeID: a.nodeID, log: a.log, region: a.cfg.Region, sealer: a.sealer, pool: a.pool, work: a.BeginWork}
	a.health = &nodeHealth{self: a.nodeID, gossip: a.gossip, draining: a.Draining, suspectFor: rc.SuspectFor}
	a.loads = &loadTracker{self: a.nodeID, gossip: a.gossip, local: func() int { return int(a.local.inflight.Load()) }}
	a.poolLimits = &viewLimits{meta: a.meta, gossip: a.gossip, slack: slack}
	a.ceilings = newRaftCeilings(a.meta, a.cfg.Logger, rc.Coordinator.ProposalTimeout/2, a.coordHost.epoch)
	lc := rc.Leases
	lc.NodeID, lc.Logger, lc.CleanStart = a.nodeID, a.cfg.Logger, a.leaseCleanStart()
	// Cut off from the coordinator, the node falls back to its share of
	// each pool over the nodes the coordinator counts (HolderNodes, here
	// from this node's replica and gossip).
	lc.FairShareNodes = func() int { return len(a.poolLimits.HolderNodes()) }
	leases, err := admission.NewLeaseAdmitter(lc, leaseClient{a: a})
	if err != nil {
		// Validate checked every field but these two, which are set.
		panic(err)
	}
	a.leases = leases
	a.provisionedStatus = newProvisionedStatus(a)
	a.provisioned = newProvisionedReconciler(a)
	a.router = &router{
		self: a.nodeID, log: a.cfg.Logger.With("component", "router", "node", a.nodeID), cfg: rc, meta: a.meta,
		ring: a.ring, health: a.health, loads: a.loads, local: a.local, admit: a.leases,
		remote:  &remoteInvoker{addrOf: a.grpcAddrOf, chunk: rc.ChunkBytes},
		metrics: newRouteMetrics(a.metrics),
		runBound: func(req *lambdaapi.InvokeRequest) time.Duration {
			return time.Duration(req.Config.GetTimeoutS())*time.Second + slack
		},
	}
	return a.router
}

// registerRoutingServices adds the Invoke and Coordinator services to the
// node-to-node gRPC server (before it serves).
func (a *Agent) registerRoutingServices(s *grpc.Server) {
	rpcpb.RegisterInvokeServer(s, &invokeService{r: a.router})
	rpcpb.RegisterCoordinatorServer(s, &coordinatorService{a: a})
}

// startRouting starts the background loops once the cluster parts run.
func (a *Agent) startRouting(dialer *cluster.Dialer) {
	a.router.remote.dialer = dialer
	ctx, cancel := context.WithCancel(context.Background())
	a.routingCancel = cancel
	for _, loop := range []func(context.Context){
		func(ctx context.Context) { a.ring.watch(ctx, a.raft.Store(), a.log) },
		a.leases.Run,
		a.ceilings.run,
		a.publishLoad,
		a.provisioned.run,
		a.provisionedStatus.run,
	} {
		a.routingWG.Add(1)
		go func() {
			defer a.routingWG.Done()
			loop(ctx)
		}()
	}
}

// stopRouting stops the loops (before the pool closes) and records a
// clean stop if nothing admitted here is still running.
func (a *Agent) stopRouting() {
	if a.routingCancel != nil {
		a.routingCancel()
	}
	a.routingWG.Wait()
	a.markLeasesClean()
}

// publishLoad gossips this node's load summary every LoadInterval (gossip
// sends it only when it changed, at most once per its own LoadInterval).
func (a *Agent) publishLoad(ctx context.Context) {
	t := time.NewTicker(a.cfg.Routing.LoadInterval)
	defer t.Stop()
	for {
		st := a.pool.Stats()
		a.SetLoad(cluster.LoadSummary{
			SandboxesIdle: st.Idle, SandboxesBusy: st.Busy + st.Initializing,
			Inflight: int(a.local.inflight.Load()), MemoryUsedMB: int64(st.MemoryUsedMB),
		})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leasesCleanFile marks a data dir whose last agent stopped with no
// admitted invocation left running.
func (a *Agent) leasesCleanFile() string { return filepath.Join(a.cfg.DataDir, "leases-clean") }

// leaseCleanStart reports whether no earlier life of this node can have
// invocations running: the node is new (no Raft state), or its last life
// left the clean marker. The marker is consumed: should this life crash,
// the next one will not find it.
func (a *Agent) leaseCleanStart() bool {
	err := os.Remove(a.leasesCleanFile())
	return err == nil || !a.raft.HasState()
}

// markLeasesClean leaves the clean marker if nothing admitted here is
// still running (after the router stopped).
func (a *Agent) markLeasesClean() {
	if a.leases == nil || a.leases.InFlightTotal() > 0 {
		return
	}
	if err := os.WriteFile(a.leasesCleanFile(), nil, 0o600); err != nil {
		a.log.Warn("clean-shutdown marker not written; the next start waits out the lease grace period", "err", err)
	}
}

// beginShutdownDrain stops this node taking new invocations through the
// ring before its sandboxes go: the draining flag refuses forwarded work
// at once (callers spill to the next preferred node) and is gossiped so
// peers stop choosing the node. It returns a channel closed once the
// invocations running here have ended.
func (a *Agent) beginShutdownDrain() <-chan struct{} {
	idle := a.startDrain()
	if a.gossip != nil {
		a.gossip.SetLoad(a.withDraining(a.gossip.Load()))
	}
	return idle
}

// waitDrained waits for idle up to the drain timeout.
func (a *Agent) waitDrained(idle <-chan struct{}) {
	select {
	case <-idle:
	case <-time.After(a.cfg.Cluster.DrainTimeout):
		a.log.Warn("invocations still running at shutdown; their sandboxes are torn down", "timeout", a.cfg.Cluster.DrainTimeout)
	}
}
