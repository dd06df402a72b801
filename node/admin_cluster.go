package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// Admin endpoints of `stoke cluster ...`. They sit under /stoke/v1/, which
// the API layer authenticates (SigV4) and restricts to admin keys.

func (a *Agent) registerClusterAdmin() {
	a.protectAdmin("GET /stoke/v1/cluster/members", a.handleMembers)
	a.protectAdmin("GET /stoke/v1/cluster/raft", a.handleRaft)
	a.protectAdmin("POST /stoke/v1/cluster/join", a.handleJoin)
	a.protectAdmin("POST /stoke/v1/cluster/leave", a.handleLeave)
	a.protectAdmin("POST /stoke/v1/cluster/force-leave", a.handleForceLeave)
	a.protectAdmin("GET /stoke/v1/cluster/state-hash", a.handleStateHash)
}

// MemberInfo is one row of `stoke cluster members`.
type MemberInfo struct {
	Node         string `json:"node"`
	Address      string `json:"address"`
	Role         string `json:"role"`
	Status       string `json:"status"`
	Raft         string `json:"raft"` // voter | nonvoter | none
	Leader       bool   `json:"leader"`
	HTTPAddr     string `json:"http_addr,omitempty"`
	GRPCAddr     string `json:"grpc_addr,omitempty"`
	RaftAddr     string `json:"raft_addr,omitempty"`
	MemoryMB     int64  `json:"memory_mb"`
	CPUs         int    `json:"cpus"`
	Build        string `json:"build_version,omitempty"`
	SandboxIdle  int    `json:"sandboxes_idle"`
	SandboxBusy  int    `json:"sandboxes_busy"`
	Inflight     int    `json:"inflight"`
	MemoryUsedMB int64  `json:"memory_used_mb"`
	Draining     bool   `json:"draining"`
}

// ClusterMembers merges this node's gossip view with the Raft
// configuration and the committed node records: a node Raft or the
// records know but gossip does not is listed with status "unknown".
func (a *Agent) ClusterMembers() ([]MemberInfo, error) {
	servers, err := a.raft.Configuration()
	if err != nil {
		return nil, err
	}
	suffrage := map[string]string{}
	for _, s := range servers {
		suffrage[s.ID] = "nonvoter"
		if s.Voter {
			suffrage[s.ID] = "voter"
		}
	}
	leader, _ := a.raft.Leader()
	rows := map[string]MemberInfo{}
	for _, m := range a.gossip.Members() {
		rows[m.ID] = MemberInfo{Node: m.ID, Address: m.GossipAddr, Role: m.Role.String(), Status: m.Status.String(),
			HTTPAddr: m.HTTPAddr, GRPCAddr: m.GRPCAddr, RaftAddr: m.RaftAddr, MemoryMB: m.MemoryMB, CPUs: m.CPUs,
			Build: m.BuildVersion, SandboxIdle: m.Load.SandboxesIdle, SandboxBusy: m.Load.SandboxesBusy,
			Inflight: m.Load.Inflight, MemoryUsedMB: m.Load.MemoryUsedMB, Draining: m.Load.Draining}
	}
	for _, n := range a.meta.View().Nodes() {
		if _, ok := rows[n.Id]; !ok {
			rows[n.Id] = MemberInfo{Node: n.Id, Address: n.GossipAddr, Role: n.Role, Status: "unknown",
				HTTPAddr: n.HttpAddr, GRPCAddr: n.GrpcAddr, RaftAddr: n.RaftAddr, MemoryMB: n.MemoryMb, CPUs: int(n.Cpus)}
		}
	}
	for _, s := range servers {
		if _, ok := rows[s.ID]; !ok {
			rows[s.ID] = MemberInfo{Node: s.ID, Status: "unknown", RaftAddr: s.Address}
		}
	}
	out := make([]MemberInfo, 0, len(rows))
	for id, row := range rows {
		row.Raft = suffrage[id]
		if row.Raft == "" {
			row.Raft = "none"
		}
		row.Leader = id == leader
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

func (a *Agent) handleMembers(w http.ResponseWriter, _ *http.Request) {
	rows, err := a.ClusterMembers()
	if err != nil {
		writeAdminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": rows})
}

// RaftPeer is one row of `stoke cluster raft`.
type RaftPeer struct {
	Node          string `json:"node"`
	Address       string `json:"address"`
	Suffrage      string `json:"suffrage"`
	State         string `json:"state,omitempty"`
	Term          uint64 `json:"term,omitempty"`
	LastLogIndex  uint64 `json:"last_log_index"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastContactMs int64  `json:"last_contact_ms"`
	Error         string `json:"error,omitempty"`
}

// RaftStatus is what `stoke cluster raft` shows.
type RaftStatus struct {
	Leader string     `json:"leader"`
	Peers  []RaftPeer `json:"peers"`
}

// ClusterRaft asks every peer in the Raft configuration for its status
// (in parallel, each call bounded by ctx).
func (a *Agent) ClusterRaft(ctx context.Context) (RaftStatus, error) {
	servers, err := a.raft.Configuration()
	if err != nil {
		return RaftStatus{}, err
	}
	leader, _ := a.raft.Leader()
	peers := make([]RaftPeer, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		peers[i] = RaftPeer{Node: s.ID, Address: s.Address, Suffrage: "nonvoter", LastContactMs: -1}
		if s.Voter {
			peers[i].Suffrage = "voter"
		}
		wg.Add(1)
		go func(p *RaftPeer) {
			defer wg.Done()
			var st *rpcpb.StatusResponse
			if p.Node == a.nodeID {
				st = cluster.LocalStatus(a.raft)
			} else if addr, ok := a.grpcAddrOf(p.Node); !ok {
				p.Error = "no known gRPC address"
				return
			} else {
				var err error
				if st, err = a.forwarder.Status(ctx, addr); err != nil {
					p.Error = err.Error()
					return
				}
			}
			p.State, p.Term, p.LastLogIndex = st.State, st.Term, st.LastLogIndex
			p.CommitIndex, p.AppliedIndex, p.LastContactMs = st.CommitIndex, st.AppliedIndex, st.LastContactMs
		}(&peers[i])
	}
	wg.Wait()
	sort.Slice(peers, func(i, j int) bool { return peers[i].Node < peers[j].Node })
	return RaftStatus{Leader: leader, Peers: peers}, nil
}

func (a *Agent) handleRaft(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := a.ClusterRaft(ctx)
	if err != nil {
		writeAdminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *Agent) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Addrs []string `json:"addrs"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || len(req.Addrs) == 0 {
		writeJSONError(w, http.StatusBadRequest, "InvalidParameterValueException", `body must be {"addrs": ["host:port", ...]}`)
		return
	}
	n, err := a.gossip.Join(req.Addrs)
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "JoinFailed", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined": n})
}

func (a *Agent) handleLeave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.cfg.Cluster.DrainTimeout+time.Minute)
	defer cancel()
	if err := a.Leave(ctx); err != nil {
		writeAdminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"left": true, "node": a.nodeID})
}

func (a *Agent) handleForceLeave(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Node string `json:"node"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Node == "" {
		writeJSONError(w, http.StatusBadRequest, "InvalidParameterValueException", `body must be {"node": "ID"}`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := a.ForceLeave(ctx, req.Node); err != nil {
		writeAdminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": req.Node})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, kind, msg string) {
	w.Header().Set("X-Amzn-ErrorType", kind)
	writeJSON(w, status, map[string]string{"message": msg})
}

// writeAdminError maps cluster errors onto HTTP statuses.
func writeAdminError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, cluster.ErrRefused):
		writeJSONError(w, http.StatusConflict, "ResourceConflictException", err.Error())
	case errors.Is(err, ErrLeft):
		writeJSONError(w, http.StatusConflict, "ResourceConflictException", err.Error())
	case errors.Is(err, ErrUnavailable), retryable(err):
		writeJSONError(w, http.StatusServiceUnavailable, "ServiceException", err.Error())
	default:
		writeJSONError(w, http.StatusInternalServerError, "ServiceException", err.Error())
	}
}
