package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// This file wires cluster-wide admission into the agent: the Raft leader
// runs the lease coordinator (admission.Coordinator) and serves it over
// gRPC; every node's LeaseAdmitter renews through leaseClient, in-process
// when the node leads.

// coordinatorHost holds the coordinator while this node leads.
type coordinatorHost struct {
	mu    sync.Mutex
	coord *admission.Coordinator
}

func (h *coordinatorHost) get() *admission.Coordinator {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.coord
}

// epoch is the running coordinator's epoch, 0 when this node runs none.
func (h *coordinatorHost) epoch() uint64 {
	if c := h.get(); c != nil {
		return c.Epoch()
	}
	return 0
}

// routingLeadership starts a coordinator with a new epoch (the Raft term)
// when this node becomes leader and drops it when it stops leading.
func (a *Agent) routingLeadership(isLeader bool) {
	h := &a.coordHost
	h.mu.Lock()
	defer h.mu.Unlock()
	if !isLeader {
		h.coord = nil
		return
	}
	coord, err := admission.NewCoordinator(a.cfg.Routing.Coordinator, a.poolLimits, a.ceilings, a.raft.Term(), time.Now())
	if err != nil {
		a.log.Error("lease coordinator not started", "err", err)
		return
	}
	h.coord = coord
	a.log.Info("lease coordinator started", "epoch", coord.Epoch())
}

// ErrNotCoordinator: the node asked is not the Raft leader (any more).
var ErrNotCoordinator = errors.New("node: not the lease coordinator")

// leaseClient is the LeaseAdmitter's way to the coordinator.
type leaseClient struct{ a *Agent }

func (c leaseClient) RenewLeases(ctx context.Context, r admission.Renewal) ([]admission.Grant, error) {
	if coord := c.a.coordHost.get(); coord != nil {
		return coord.Renew(r, time.Now())
	}
	client, err := c.a.coordinatorClient()
	if err != nil {
		return nil, err
	}
	resp, err := client.RenewLeases(ctx, renewalToPB(r))
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	if resp.NotLeader {
		return nil, ErrNotCoordinator
	}
	return grantsFromPB(resp.Grants), nil
}

// coordinatorClient dials the current leader's Coordinator service.
func (a *Agent) coordinatorClient() (rpcpb.CoordinatorClient, error) {
	leader, _ := a.raft.Leader()
	if leader == "" {
		return nil, cluster.ErrNoLeader
	}
	addr, ok := a.grpcAddrOf(leader)
	if !ok {
		return nil, fmt.Errorf("node: no gRPC address for leader %s", leader)
	}
	cc, err := a.dialer.Conn(addr)
	if err != nil {
		return nil, err
	}
	return rpcpb.NewCoordinatorClient(cc), nil
}

// coordinatorService serves the coordinator to other nodes.
type coordinatorService struct {
	rpcpb.UnimplementedCoordinatorServer
	a *Agent
}

func (s *coordinatorService) RenewLeases(ctx context.Context, req *rpcpb.RenewLeasesRequest) (*rpcpb.RenewLeasesResponse, error) {
	// A renewal whose caller gave up (its deadline passed while it queued
	// behind a busy leader) is not recorded: the caller counts it as
	// unanswered, and the coordinator must not count the node as heard.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	coord := s.a.coordHost.get()
	if coord == nil {
		leader, _ := s.a.raft.Leader()
		return &rpcpb.RenewLeasesResponse{NotLeader: true, LeaderId: leader}, nil
	}
	grants, err := coord.Renew(renewalFromPB(req), time.Now())
	if errors.Is(err, admission.ErrStaleCoordinator) {
		return &rpcpb.RenewLeasesResponse{NotLeader: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return &rpcpb.RenewLeasesResponse{Grants: grantsToPB(grants)}, nil
}

func (s *coordinatorService) ConcurrencyUsage(_ context.Context, req *rpcpb.ConcurrencyUsageRequest) (*rpcpb.ConcurrencyUsageResponse, error) {
	coord := s.a.coordHost.get()
	if coord == nil {
		return &rpcpb.ConcurrencyUsageResponse{NotLeader: true}, nil
	}
	return &rpcpb.ConcurrencyUsageResponse{InFlight: uint32(coord.InFlight(req.AccountId, time.Now()))}, nil
}

func (s *coordinatorService) ReportProvisioned(_ context.Context, req *rpcpb.ReportProvisionedRequest) (*rpcpb.ReportProvisionedResponse, error) {
	if s.a.coordHost.get() == nil {
		return &rpcpb.ReportProvisionedResponse{NotLeader: true}, nil
	}
	s.a.provisionedStatus.record(req.NodeId, req.Reports, time.Now())
	return &rpcpb.ReportProvisionedResponse{}, nil
}

// AccountConcurrency is the cluster-wide count of an account's invocations
// in flight, as the coordinator last heard from every node (each report at
// most a renewal interval old). It implements lambdaapi.ConcurrencyUsage.
func (a *Agent) AccountConcurrency(ctx context.Context, accountID string) (int, error) {
	if coord := a.coordHost.get(); coord != nil {
		return coord.InFlight(accountID, time.Now()), nil
	}
	client, err := a.coordinatorClient()
	if err != nil {
		return 0, err
	}
	resp, err := client.ConcurrencyUsage(ctx, &rpcpb.ConcurrencyUsageRequest{AccountId: accountID})
	if err != nil {
		return 0, fmt.Errorf("concurrency usage: %w", err)
	}
	if resp.NotLeader {
		return 0, ErrNotCoordinator
	}
	return int(resp.InFlight), nil
}

// raftCeilings keeps the coordinator's per-account lease ceilings in Raft
// (fsm.SetLeaseCeiling). Proposals are applied one after another by run,
// each within half the coordinator's ProposalTimeout, so they commit in
// the order the coordinator made them.
type raftCeilings struct {
	meta    *Metadata
	log     *slog.Logger
	timeout time.Duration
	// epoch is the epoch of this node's coordinator (0: none); proposals
	// of another epoch (a coordinator this node no longer runs) are dropped.
	epoch func() uint64

	mu      sync.Mutex
	pending []ceilingProposal
	kick    chan struct{}
}

type ceilingProposal struct {
	account string
	ceiling int
	epoch   uint64
}

func newRaftCeilings(meta *Metadata, log *slog.Logger, timeout time.Duration, epoch func() uint64) *raftCeilings {
	return &raftCeilings{meta: meta, log: log.With("component", "lease-ceilings"), timeout: timeout, epoch: epoch, kick: make(chan struct{}, 1)}
}

func (r *raftCeilings) Ceiling(accountID string) (int, uint64) {
	if c := r.meta.View().LeaseCeiling(accountID); c != nil {
		return int(c.Ceiling), c.Epoch
	}
	return 0, 0
}

func (r *raftCeilings) Propose(accountID string, ceiling int, epoch uint64) {
	r.mu.Lock()
	r.pending = append(r.pending, ceilingProposal{account: accountID, ceiling: ceiling, epoch: epoch})
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *raftCeilings) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for {
			r.mu.Lock()
			if len(r.pending) == 0 {
				r.mu.Unlock()
				break
			}
			p := r.pending[0]
			r.pending = r.pending[1:]
			r.mu.Unlock()
			if p.epoch != r.epoch() {
				continue // proposed by a coordinator this node no longer runs
			}
			actx, cancel := context.WithTimeout(ctx, r.timeout)
			_, err := r.meta.Apply(actx, &fsmpb.SetLeaseCeilingCmd{Header: &fsmpb.Header{AccountId: p.account}, Ceiling: int32(p.ceiling), Epoch: p.epoch})
			cancel()
			if err != nil {
				r.log.Warn("lease ceiling not committed", "account", p.account, "ceiling", p.ceiling, "epoch", p.epoch, "err", err)
			}
		}
	}
}

// viewLimits gives the coordinator each pool's limit from the leader's
// replica. MaxRun is the longest timeout among the pool's function
// configurations ($LATEST and versions) plus slack (queueing and Init),
// cached per account until the replica moves.
type viewLimits struct {
	meta   *Metadata
	gossip *cluster.Gossip
	slack  time.Duration

	mu    sync.Mutex
	index uint64
	runs  map[string]time.Duration // account or account/function -> longest timeout
}

func (l *viewLimits) PoolLimit(p admission.Pool) (int, time.Duration, bool) {
	v := l.meta.View()
	acct := v.Account(p.AccountID)
	if acct == nil {
		return 0, 0, false
	}
	if p.Function == "" {
		limit := int(acct.ConcurrencyLimit) - int(v.ReservedConcurrency(p.AccountID, ""))
		return max(limit, 0), l.longest(p.AccountID, ""), true
	}
	fn := v.Function(p.AccountID, p.Function)
	if fn == nil || !fn.HasReservedConcurrency {
		return 0, 0, false
	}
	return int(fn.ReservedConcurrency), l.longest(p.AccountID, p.Function), true
}

// AccountLimit is the account's concurrency limit (0 when unknown).
func (l *viewLimits) AccountLimit(accountID string) int {
	if acct := l.meta.View().Account(accountID); acct != nil {
		return int(acct.ConcurrencyLimit)
	}
	return 0
}

// HolderNodes are the nodes that can hold a lease: the committed node
// records and the members gossip sees alive (a node that just joined may
// serve before the leader records it).
func (l *viewLimits) HolderNodes() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range l.meta.View().Nodes() {
		seen[n.Id] = true
		out = append(out, n.Id)
	}
	if l.gossip != nil {
		for _, m := range l.gossip.Members() {
			if m.Alive() && !seen[m.ID] {
				out = append(out, m.ID)
			}
		}
	}
	return out
}

// longest is the longest timeout of the account's functions (function
// empty) or of one function, plus slack.
func (l *viewLimits) longest(account, function string) time.Duration {
	store := l.meta.Raft().Store()
	l.mu.Lock()
	defer l.mu.Unlock()
	if idx := store.AppliedIndex(); idx != l.index || l.runs == nil {
		l.index, l.runs = idx, map[string]time.Duration{}
	}
	key := account + "/" + function
	if d, ok := l.runs[key]; ok {
		return d
	}
	v := store.View()
	var longest int32 = 1
	consider := func(fn *fsmpb.Function) {
		longest = max(longest, fn.Config.GetTimeoutS())
		for _, ver := range v.Versions(account, fn.Name) {
			longest = max(longest, ver.Config.GetTimeoutS())
		}
	}
	if function != "" {
		if fn := v.Function(account, function); fn != nil {
			consider(fn)
		}
	} else {
		for _, fn := range v.Functions(account, "", 0) {
			consider(fn)
		}
	}
	d := time.Duration(longest)*time.Second + l.slack
	l.runs[key] = d
	return d
}
