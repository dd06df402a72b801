package node

import (
	"context"
	"errors"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/rpcpb"
	"github.com/stokehq/stoke/runtime"
)

// refusal says why a node did not run an invocation it was offered. A
// refusal is a promise: the invocation did not run there and never will,
// so the caller may offer it to another node. The zero value is no refusal.
type refusal struct {
	reason  rpcpb.RefusalReason
	message string
}

func (r refusal) refused() bool { return r.reason != rpcpb.RefusalReason_REFUSAL_REASON_UNSPECIFIED }

func refuse(reason rpcpb.RefusalReason, message string) refusal {
	return refusal{reason: reason, message: message}
}

// run executes req on this node's pool as mode allows:
//
//   - WARM_ONLY: on an idle sandbox of the version, else refused;
//   - NO_QUEUE: warm, or a cold start if the memory budget allows, else
//     refused (the load bound is the router's to check);
//   - QUEUE: as the pool decides, waiting in its queue if it must.
//
// It returns the result (function errors included), or a refusal, or an
// error: a *lambdaapi.Error when the platform failed the invocation, or
// ctx's error when ctx ended first, in which case the function may still
// be running (the pool lets it run to its end, as Lambda does).
func (l *localInvoker) run(ctx context.Context, req *lambdaapi.InvokeRequest, mode rpcpb.InvokeMode) (*lambdaapi.InvokeResult, refusal, error) {
	done, ok := l.work()
	if !ok {
		return nil, refuse(rpcpb.RefusalReason_REFUSAL_REASON_DRAINING, "node "+l.nodeID+" is leaving the cluster"), nil
	}
	defer done()
	spec, err := l.spec(req)
	if err != nil {
		return nil, refusal{}, l.platformError(err, req)
	}
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	res, err := l.pool.Invoke(ctx, spec, runtime.Invocation{
		RequestID:          req.RequestID,
		Payload:            req.Payload,
		InvokedFunctionARN: req.InvokedARN,
		ClientContext:      req.ClientContext,
		NoQueue:            mode != rpcpb.InvokeMode_INVOKE_MODE_QUEUE,
		WarmOnly:           mode == rpcpb.InvokeMode_INVOKE_MODE_WARM_ONLY,
	})
	switch {
	case errors.Is(err, runtime.ErrNoWarmSandbox):
		return nil, refuse(rpcpb.RefusalReason_REFUSAL_REASON_NO_WARM_SANDBOX, "no idle sandbox of the version on "+l.nodeID), nil
	case errors.Is(err, runtime.ErrSaturated):
		return nil, refuse(rpcpb.RefusalReason_REFUSAL_REASON_SATURATED, "no idle sandbox and no memory for a new one on "+l.nodeID), nil
	case errors.Is(err, runtime.ErrColdStartsBusy) && mode != rpcpb.InvokeMode_INVOKE_MODE_QUEUE:
		return nil, refuse(rpcpb.RefusalReason_REFUSAL_REASON_SATURATED, "no idle sandbox and every Init slot busy on "+l.nodeID), nil
	case errors.Is(err, runtime.ErrClosed):
		return nil, refuse(rpcpb.RefusalReason_REFUSAL_REASON_DRAINING, "node "+l.nodeID+" is shutting down"), nil
	case err != nil && ctx.Err() != nil:
		return nil, refusal{}, ctx.Err()
	case err != nil:
		return nil, refusal{}, l.platformError(err, req)
	}
	return &lambdaapi.InvokeResult{
		Payload:       res.Payload,
		FunctionError: res.FunctionError,
		LogTail:       res.LogTail,
		Node:          l.nodeID,
		ColdStart:     res.ColdStart,
		InitDuration:  res.InitDuration,
		Duration:      res.Duration,
	}, refusal{}, nil
}

// hasIdle reports whether the pool has an idle sandbox of req's version
// right now (a hint: it may be taken a moment later).
func (l *localInvoker) hasIdle(req *lambdaapi.InvokeRequest) bool {
	return l.pool.Stats().ByKey[sandboxKey(req)].Idle > 0
}
