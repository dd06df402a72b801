package node

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/placement"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
	"github.com/stokehq/stoke/runtime"
)

// Provisioned concurrency, node side. Every node computes, for each config
// in its replica, the version's preferred nodes (the first
// RoutingConfig.Candidates live ones on the ring) and its own share of the
// requested sandboxes (spread evenly, the home shard first), keeps that
// many initialised with runtime.Pool.Prewarm (exempt from keep-alive and
// eviction), and reports what it holds to the leader, which turns the
// reports into the config's status (provisioned_status.go). When a node
// dies, liveness moves its share to the next node along the ring, whose
// next pass creates the sandboxes there. The router's warm pass finds
// these sandboxes before any cold start is allowed.

// provisionedShare is node self's part of n sandboxes spread over nodes
// (in preference order; earlier nodes take the remainder).
func provisionedShare(n int, nodes []string, self string) int {
	for i, id := range nodes {
		if id == self {
			share := n / len(nodes)
			if i < n%len(nodes) {
				share++
			}
			return share
		}
	}
	return 0
}

// provisionedTarget resolves a config to the version it provisions, as an
// invocation of that version would be built. ok is false while the
// qualifier does not resolve (deleted, or not replicated yet).
func provisionedTarget(v *fsm.View, cfg *fsmpb.ProvisionedConcurrencyConfig) (*lambdaapi.InvokeRequest, bool) {
	fn := v.Function(cfg.AccountId, cfg.FunctionName)
	if fn == nil {
		return nil, false
	}
	version := cfg.Qualifier
	if al := v.Alias(cfg.AccountId, cfg.FunctionName, cfg.Qualifier); al != nil {
		// A weighted alias provisions its primary version only.
		version = al.FunctionVersion
	}
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return nil, false
	}
	ver := v.Version(cfg.AccountId, cfg.FunctionName, n)
	if ver == nil {
		return nil, false
	}
	return &lambdaapi.InvokeRequest{AccountID: cfg.AccountId, FunctionName: cfg.FunctionName,
		Version: version, Config: ver.Config, Revision: ver.RevisionId}, true
}

func provisionedKey(account, function, qualifier string) string {
	return account + "/" + function + ":" + qualifier
}

// provisionedReconciler keeps this node's share of every config.
type provisionedReconciler struct {
	a    *Agent
	log  *slog.Logger
	kick chan struct{}

	// kept are the specs this node keeps prewarmed, by sandbox key; owned
	// by the run goroutine.
	kept map[string]runtime.FunctionSpec
}

func newProvisionedReconciler(a *Agent) *provisionedReconciler {
	return &provisionedReconciler{a: a, log: a.cfg.Logger.With("component", "provisioned", "node", a.nodeID),
		kick: make(chan struct{}, 1), kept: map[string]runtime.FunctionSpec{}}
}

func (p *provisionedReconciler) trigger() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run reconciles every ProvisionedInterval and whenever the replica or
// membership changes, until ctx ends.
func (p *provisionedReconciler) run(ctx context.Context) {
	store := p.a.raft.Store()
	go func() {
		for {
			idx := store.AppliedIndex()
			if err := store.WaitForIndex(ctx, idx+1); err != nil {
				return
			}
			p.trigger()
		}
	}()
	events, unsubscribe := p.a.gossip.Subscribe(16)
	defer unsubscribe()
	tick := time.NewTicker(p.a.cfg.Routing.ProvisionedInterval)
	defer tick.Stop()
	last := ""
	for {
		sig := p.signature()
		if sig != last {
			p.pass(ctx)
			last = sig
		}
		select {
		case <-ctx.Done():
			p.release()
			return
		case <-p.kick:
		case <-events:
		case <-tick.C:
			last = "" // a periodic pass even when nothing changed
		}
	}
}

// signature changes whenever a pass could decide differently.
// It is computed after every applied Raft entry, so it is built in one
// buffer rather than by concatenation (quadratic in the configs).
func (p *provisionedReconciler) signature() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(p.a.ring.Ring().Fingerprint(), 10))
	for _, c := range p.a.meta.View().AllProvisionedConfigs() {
		b.WriteString("|" + provisionedKey(c.AccountId, c.FunctionName, c.Qualifier) + "=" + c.RevisionId)
	}
	for _, m := range p.a.gossip.Members() {
		b.WriteString("|" + m.ID + ":" + strconv.FormatBool(p.a.health.live(m.ID)))
	}
	return b.String()
}

// pass prewarms this node's shares, releases what it no longer keeps and
// reports to the leader.
func (p *provisionedReconciler) pass(ctx context.Context) {
	v := p.a.meta.View()
	ring := p.a.ring.Ring()
	type keep struct {
		spec runtime.FunctionSpec
		n    int
	}
	want := map[string]keep{}
	var reports []*rpcpb.ProvisionedReport
	specKey := map[*rpcpb.ProvisionedReport]string{}
	for _, cfg := range v.AllProvisionedConfigs() {
		req, ok := provisionedTarget(v, cfg)
		if !ok {
			continue
		}
		share := provisionedShare(int(cfg.Requested), p.preferred(ring, placementKey(req)), p.a.nodeID)
		rep := &rpcpb.ProvisionedReport{AccountId: cfg.AccountId, FunctionName: cfg.FunctionName, Qualifier: cfg.Qualifier,
			RevisionId: cfg.RevisionId, Assigned: uint32(share)}
		reports = append(reports, rep)
		if share == 0 {
			continue
		}
		spec, err := p.a.local.spec(req)
		if err != nil {
			p.log.Warn("provisioned concurrency not allocated", "function", req.FunctionName, "err", err)
			rep.Error = "The function's environment variables could not be opened on the node."
			continue
		}
		k := want[spec.Key]
		k.spec, k.n = spec, k.n+share
		want[spec.Key] = k
		specKey[rep] = spec.Key
	}
	errs := map[string]string{}
	for key, k := range want {
		if err := p.a.pool.Prewarm(ctx, k.spec, k.n); err != nil && ctx.Err() == nil {
			p.log.Warn("provisioned concurrency not allocated", "function", k.spec.FunctionName, "version", k.spec.Version, "want", k.n, "err", err)
			errs[key] = provisionedReason(err)
		}
	}
	for key, spec := range p.kept {
		if _, ok := want[key]; !ok {
			_ = p.a.pool.Prewarm(ctx, spec, 0) // back to keep-alive and eviction
		}
	}
	p.kept = map[string]runtime.FunctionSpec{}
	for key, k := range want {
		p.kept[key] = k.spec
	}
	stats := p.a.pool.Stats()
	for _, rep := range reports {
		key, ok := specKey[rep]
		if !ok {
			continue
		}
		ks := stats.ByKey[key]
		rep.Allocated = uint32(min(int(rep.Assigned), ks.Idle+ks.Busy))
		if rep.Allocated < rep.Assigned {
			rep.Error = errs[key]
		}
	}
	if len(reports) > 0 {
		if err := p.report(ctx, reports); err != nil {
			p.log.Debug("provisioned concurrency report not delivered", "err", err)
		}
	}
}

// preferred are the version's nodes that hold its provisioned sandboxes.
func (p *provisionedReconciler) preferred(ring *placement.Ring, key string) []string {
	nodes := ring.Preferred(key, p.a.cfg.Routing.Candidates, p.a.health.live)
	if len(nodes) == 0 && p.a.health.live(p.a.nodeID) {
		return []string{p.a.nodeID} // no ring yet: this node alone
	}
	return nodes
}

// provisionedReason turns a Prewarm failure into the StatusReason Lambda
// would give. The tenant reads it, so platform failures are named, never
// quoted: their text carries host paths (the caller logs the cause).
func provisionedReason(err error) string {
	switch {
	case errors.Is(err, runtime.ErrQueueTimeout), errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrSaturated),
		errors.Is(err, runtime.ErrColdStartsBusy):
		return "The node's memory budget cannot hold the provisioned sandboxes."
	case errors.Is(err, runtime.ErrInitFailed):
		// The function's own error payload, as Lambda shows it.
		return "FUNCTION_ERROR_INIT_FAILURE: " + err.Error()
	case errors.Is(err, runtime.ErrCode):
		return "The function's code could not be made available on the node; the platform retries."
	}
	return "The node could not start the provisioned sandboxes; the platform retries."
}

// report sends reports to the leader (in-process when this node leads).
func (p *provisionedReconciler) report(ctx context.Context, reports []*rpcpb.ProvisionedReport) error {
	if p.a.coordHost.get() != nil {
		p.a.provisionedStatus.record(p.a.nodeID, reports, time.Now())
		return nil
	}
	client, err := p.a.coordinatorClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := client.ReportProvisioned(ctx, &rpcpb.ReportProvisionedRequest{NodeId: p.a.nodeID, Reports: reports})
	if err != nil {
		return err
	}
	if resp.NotLeader {
		return ErrNotCoordinator
	}
	return nil
}

// release lifts the keep-alive exemption of everything kept (shutdown).
func (p *provisionedReconciler) release() {
	for _, spec := range p.kept {
		_ = p.a.pool.Prewarm(context.Background(), spec, 0)
	}
	p.kept = map[string]runtime.FunctionSpec{}
}
