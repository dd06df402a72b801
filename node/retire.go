package node

import (
	"context"
	"strconv"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/runtime"
)

// retireSpacing bounds how often the replica's applies trigger a pass
// over the pool's idle sandboxes.
const retireSpacing = 100 * time.Millisecond

// retireReplacedSandboxes tears down the idle sandboxes of a function's
// previous configuration or code as soon as this node's replica applies
// the UpdateFunctionConfiguration, UpdateFunctionCode or DeleteFunction
// that replaced it, instead of letting them idle for the keep-alive with
// their memory reserved (issue 13). It runs until the agent stops.
func (a *Agent) retireReplacedSandboxes() {
	defer a.wg.Done()
	ctx, cancel := a.untilStop(context.Background())
	defer cancel()
	store := a.raft.Store()
	for {
		idx := store.AppliedIndex()
		v := a.meta.View()
		a.pool.RetireStale(func(fn runtime.FunctionSpec) bool { return currentSandboxKey(v, fn) != fn.Key })
		if err := store.WaitForIndex(ctx, idx+1); err != nil {
			return // the agent stops
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retireSpacing):
		}
	}
}

// currentSandboxKey is the Key an invocation of fn's version would carry
// now (sandboxKey's format, with the revision the replica holds), or ""
// when the function or version no longer exists.
func currentSandboxKey(v *fsm.View, fn runtime.FunctionSpec) string {
	f := v.Function(fn.AccountID, fn.FunctionName)
	if f == nil {
		return ""
	}
	rev := f.RevisionId
	if fn.Version != "$LATEST" {
		n, err := strconv.ParseInt(fn.Version, 10, 64)
		if err != nil {
			return ""
		}
		ver := v.Version(fn.AccountID, fn.FunctionName, n)
		if ver == nil {
			return ""
		}
		rev = ver.RevisionId
	}
	return fn.AccountID + "/" + fn.FunctionName + "/" + fn.Version + "/" + rev
}
