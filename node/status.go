package node

import (
	"context"
	"net/http"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// NodeStatus is what `stoke status` shows about one node.
type NodeStatus struct {
	Node      string `json:"node"`
	Role      string `json:"role"`
	Version   string `json:"build_version"`
	RaftState string `json:"raft_state"`
	Leader    string `json:"leader"`
	Applied   uint64 `json:"applied_index"`
	Draining  bool   `json:"draining"`
	// Isolation is "full", or "none" when the node runs function code as
	// plain processes (--insecure-no-sandbox); Warning then says so.
	Isolation      string   `json:"isolation"`
	Warning        string   `json:"warning,omitempty"`
	SandboxesIdle  int      `json:"sandboxes_idle"`
	SandboxesBusy  int      `json:"sandboxes_busy"`
	SandboxesInit  int      `json:"sandboxes_initializing"`
	MemoryUsedMB   int      `json:"memory_used_mb"`
	MemoryBudgetMB int      `json:"memory_budget_mb"`
	Queued         int      `json:"queued"`
	Runtimes       []string `json:"runtimes"`
}

// Status reports this node's state.
func (a *Agent) Status() NodeStatus {
	leader, _ := a.raft.Leader()
	st := NodeStatus{
		Node: a.nodeID, Role: a.cfg.Cluster.role().String(), Version: a.cfg.Cluster.BuildVersion,
		RaftState: a.raft.State(), Leader: leader, Applied: a.raft.Store().AppliedIndex(), Draining: a.Draining(),
		Runtimes: runtime.Runtimes(),
	}
	ps := a.pool.Stats()
	st.Isolation = "full"
	if ps.Isolation == runtime.IsolationNone {
		st.Isolation = "none"
		st.Warning = "INSECURE: sandboxing is disabled (--insecure-no-sandbox); function code runs as plain processes with the agent's privileges"
	}
	st.SandboxesIdle, st.SandboxesBusy, st.SandboxesInit = ps.Idle, ps.Busy, ps.Initializing
	st.MemoryUsedMB, st.MemoryBudgetMB, st.Queued = ps.MemoryUsedMB, ps.MemoryBudgetMB, ps.Queued
	return st
}

func (a *Agent) registerStatus() {
	a.api.Handle("GET /stoke/v1/status", true, 1024, func(context.Context, *http.Request, []byte, lambdaapi.Principal) (any, int, error) {
		return a.Status(), http.StatusOK, nil
	})
}
