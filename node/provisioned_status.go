package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// provisionedStatus is the leader's view of the nodes' reports; it
// writes each config's status, allocated count and reason to Raft when
// they change (never per invocation).
type provisionedStatus struct {
	a    *Agent
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	reports map[string]map[string]nodeProvisioned // config key -> node -> report
}

type nodeProvisioned struct {
	rep *rpcpb.ProvisionedReport
	at  time.Time
}

func newProvisionedStatus(a *Agent) *provisionedStatus {
	return &provisionedStatus{a: a, log: a.cfg.Logger.With("component", "provisioned-status", "node", a.nodeID),
		kick: make(chan struct{}, 1), reports: map[string]map[string]nodeProvisioned{}}
}

// record stores a node's reports and schedules an evaluation.
func (s *provisionedStatus) record(node string, reports []*rpcpb.ProvisionedReport, now time.Time) {
	s.mu.Lock()
	for _, r := range reports {
		key := provisionedKey(r.AccountId, r.FunctionName, r.Qualifier)
		if s.reports[key] == nil {
			s.reports[key] = map[string]nodeProvisioned{}
		}
		s.reports[key][node] = nodeProvisioned{rep: r, at: now}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *provisionedStatus) run(ctx context.Context) {
	tick := time.NewTicker(s.a.cfg.Routing.ProvisionedInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		if s.a.coordHost.get() != nil {
			s.evaluate(ctx, time.Now())
		}
	}
}

// evaluate compares every config with the fresh reports of live nodes.
func (s *provisionedStatus) evaluate(ctx context.Context, now time.Time) {
	fresh := 3 * s.a.cfg.Routing.ProvisionedInterval
	s.pruneStale(now, fresh)
	for _, cfg := range s.a.meta.View().AllProvisionedConfigs() {
		key := provisionedKey(cfg.AccountId, cfg.FunctionName, cfg.Qualifier)
		allocated, reason := 0, ""
		s.mu.Lock()
		for node, np := range s.reports[key] {
			if np.rep.RevisionId != cfg.RevisionId || now.Sub(np.at) > fresh || !s.a.health.live(node) {
				continue
			}
			allocated += int(np.rep.Allocated)
			if np.rep.Error != "" && reason == "" {
				reason = np.rep.Error
			}
		}
		s.mu.Unlock()
		allocated = min(allocated, int(cfg.Requested))
		status := fsm.ProvisionedInProgress
		switch {
		case allocated >= int(cfg.Requested):
			status, reason = fsm.ProvisionedReady, ""
		case reason != "":
			status = fsm.ProvisionedFailed
		case cfg.Status == fsm.ProvisionedReady:
			// A node died: Lambda keeps reporting READY while it
			// replaces the lost capacity; Allocated shows the gap.
			status = fsm.ProvisionedReady
		}
		if status == cfg.Status && int32(allocated) == cfg.Allocated && reason == cfg.StatusReason {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.a.meta.Apply(actx, &fsmpb.SetProvisionedConcurrencyStatusCmd{
			Header:       &fsmpb.Header{AccountId: cfg.AccountId},
			FunctionName: cfg.FunctionName, Qualifier: cfg.Qualifier, ExpectedRevisionId: cfg.RevisionId,
			Status: status, StatusReason: reason, Allocated: int32(allocated),
		})
		cancel()
		if code := fsm.CodeOf(err); err != nil && code != fsm.CodePrecondition && code != fsm.CodeNotFound {
			s.log.Warn("provisioned concurrency status not recorded", "config", key, "err", err)
		}
	}
}

// pruneStale forgets reports older than fresh, which evaluate ignores:
// those of deleted configs and of nodes that stopped reporting would
// otherwise stay in the map for the life of the process.
func (s *provisionedStatus) pruneStale(now time.Time, fresh time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, nodes := range s.reports {
		for node, np := range nodes {
			if now.Sub(np.at) > fresh {
				delete(nodes, node)
			}
		}
		if len(nodes) == 0 {
			delete(s.reports, key)
		}
	}
}
