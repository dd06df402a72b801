package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/placement"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// router is the node's whole invoke path, the lambdaapi.Invoker behind
// the Lambda API's sync invokes (and the one async delivery must use):
//
//  1. admission: a slot of the function's pool under the cluster-wide
//     concurrency limits (admission.LeaseAdmitter), taken on the node
//     that received the invocation and held until the invocation has
//     certainly ended;
//  2. placement: the preferred nodes of the function version on the ring,
//     live ones only, in bounded-load order (placement.Ring.Place);
//  3. attempts, each run here or forwarded over one gRPC hop to a node
//     that never forwards it further:
//     - warm pass: each candidate (this node first, it costs no hop) runs
//     it only on an idle warm sandbox;
//     - cold pass: each candidate runs it if it has memory for a new
//     sandbox and is within its load bound;
//     - last resort: the first candidate that still answers queues it.
//
// A candidate that refuses promises it did not run the invocation, so the
// next one may. A forward that breaks after the callee may have started
// the function ends the invocation with a ServiceException saying the
// outcome is unknown: it is never retried elsewhere, so a function never
// runs twice for one request.
type router struct {
	self    string
	log     *slog.Logger
	cfg     RoutingConfig
	meta    *Metadata
	ring    *ringView
	health  *nodeHealth
	loads   *loadTracker
	local   *localInvoker
	remote  *remoteInvoker
	admit   admission.Admitter
	metrics *routeMetrics
	// runBound is the longest an invocation of req can take once admitted
	// (queueing, Init and the function's timeout): the deadline of a
	// forward, and how long a slot is held when the outcome is unknown.
	runBound func(req *lambdaapi.InvokeRequest) time.Duration
}

// Invoke admits, places and runs req. Errors are *lambdaapi.Error values
// (429 throttles, 5xx platform failures) or ctx's error.
func (r *router) Invoke(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	release, err := r.admitRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	res, settled, err := r.route(ctx, req)
	if settled {
		release()
	} else {
		// The function may still be running somewhere: its slot stays
		// taken until it certainly ended.
		time.AfterFunc(r.runBound(req), release)
	}
	return res, err
}

func (r *router) admitRequest(ctx context.Context, req *lambdaapi.InvokeRequest) (func(), error) {
	v := r.meta.View()
	acct := v.Account(req.AccountID)
	if acct == nil {
		return nil, fmt.Errorf("account %s is not in the local replica", req.AccountID)
	}
	release, err := r.admit.Admit(ctx, admission.Request{
		AccountID:     req.AccountID,
		Function:      req.FunctionName,
		Reserved:      req.ReservedConcurrency,
		AccountLimit:  int(acct.ConcurrencyLimit),
		ReservedTotal: int(v.ReservedConcurrency(req.AccountID, "")),
	})
	var te *admission.ThrottleError
	if errors.As(err, &te) {
		return nil, lambdaapi.TooManyRequests(te.Reason, te.Error(), 1)
	}
	return release, err
}

// outcome classifies one attempt.
type outcome int

func (o outcome) String() string {
	switch o {
	case outcomeDone:
		return "ran"
	case outcomeRefused:
		return "refused"
	case outcomeUnreachable:
		return "unreachable"
	case outcomeUnknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

const (
	// outcomeDone: a result or a definite platform error.
	outcomeDone outcome = iota
	// outcomeRefused: the node did not and will not run it.
	outcomeRefused
	// outcomeUnreachable: the node could not be reached; it never saw it.
	outcomeUnreachable
	// outcomeUnknown: the node may have run it; nothing more may be tried.
	outcomeUnknown
)

// route tries the candidates; settled is false when the invocation may
// still be running although route returned.
func (r *router) route(ctx context.Context, req *lambdaapi.InvokeRequest) (res *lambdaapi.InvokeResult, settled bool, err error) {
	key := placementKey(req)
	ring := r.ring.Ring()
	cands := ring.Place(key, r.cfg.Candidates, r.loads.snapshot(ring), r.health.live)
	if len(cands) == 0 && r.health.live(r.self) {
		// No ring yet (this node's record is not committed): run here.
		cands = []string{r.self}
	}
	if len(cands) == 0 {
		return nil, true, &lambdaapi.Error{Status: http.StatusServiceUnavailable, Type: "ServiceException",
			Message: "No node of the cluster can take invocations right now (every node is draining or unreachable); retry later."}
	}
	warmOrder := cands
	if i := slices.Index(cands, r.self); i > 0 {
		warmOrder = append([]string{r.self}, slices.Delete(slices.Clone(cands), i, i+1)...)
	}
	gone := map[string]bool{} // refused for good (draining) or unreachable
	var last refusal
	passes := []struct {
		mode  rpcpb.InvokeMode
		order []string
	}{
		{rpcpb.InvokeMode_INVOKE_MODE_WARM_ONLY, warmOrder},
		{rpcpb.InvokeMode_INVOKE_MODE_NO_QUEUE, cands},
		{rpcpb.InvokeMode_INVOKE_MODE_QUEUE, cands},
	}
	for _, pass := range passes {
		for _, id := range pass.order {
			if gone[id] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, true, err
			}
			res, ref, out, err := r.attempt(ctx, id, req, pass.mode)
			r.metrics.attempt(pass.mode, id == r.self, out, ref)
			switch out {
			case outcomeDone:
				return res, true, err
			case outcomeUnknown:
				return nil, false, err
			case outcomeUnreachable:
				gone[id] = true
				r.health.markUnreachable(id)
				r.log.Warn("node unreachable; trying the next preferred node", "target", id, "err", err)
			case outcomeRefused:
				last = ref
				if ref.reason == rpcpb.RefusalReason_REFUSAL_REASON_DRAINING {
					gone[id] = true
				}
			}
		}
	}
	msg := "No node of the cluster can take this invocation right now; retry later."
	if last.refused() {
		msg += " Last refusal: " + last.message + "."
	}
	return nil, true, lambdaapi.TooManyRequests(lambdaapi.ReasonConcurrentInvocationLimitExceeded, msg, 1)
}

// attempt offers req to node id in mode: here, or over one gRPC hop.
func (r *router) attempt(ctx context.Context, id string, req *lambdaapi.InvokeRequest, mode rpcpb.InvokeMode) (*lambdaapi.InvokeResult, refusal, outcome, error) {
	if id == r.self {
		res, ref, err := r.runHere(ctx, req, mode)
		switch {
		case ref.refused():
			return nil, ref, outcomeRefused, nil
		case err != nil && ctx.Err() != nil:
			return nil, refusal{}, outcomeUnknown, err
		}
		return res, refusal{}, outcomeDone, err
	}
	done := r.loads.forward(id)
	defer done()
	ctx, cancel := context.WithTimeout(ctx, r.runBound(req))
	defer cancel()
	res, ref, sent, err := r.remote.invoke(ctx, id, req, mode)
	switch {
	case ref.refused():
		return nil, ref, outcomeRefused, nil
	case err == nil:
		return res, refusal{}, outcomeDone, nil
	case !sent:
		return nil, refusal{}, outcomeUnreachable, err
	}
	var apiErr *lambdaapi.Error
	if errors.As(err, &apiErr) && !errors.Is(err, errOutcomeUnknown) {
		return nil, refusal{}, outcomeDone, err
	}
	return nil, refusal{}, outcomeUnknown, err
}

// runHere runs req on this node in mode, after the checks a node makes
// before it takes an invocation another node placed on it: not draining,
// and for a cold start, within its own load bound (its exact load).
func (r *router) runHere(ctx context.Context, req *lambdaapi.InvokeRequest, mode rpcpb.InvokeMode) (*lambdaapi.InvokeResult, refusal, error) {
	if ref := r.precheck(req, mode, false); ref.refused() {
		return nil, ref, nil
	}
	return r.local.run(ctx, req, mode)
}

// precheck refuses what this node can refuse without running anything:
// it is draining, or (no queue) it is over its load bound, or (warm only,
// when checkWarm is set) it has no idle sandbox of the version right now,
// which the invoke service checks before it accepts a large payload.
func (r *router) precheck(req *lambdaapi.InvokeRequest, mode rpcpb.InvokeMode, checkWarm bool) refusal {
	if !r.health.live(r.self) {
		return refuse(rpcpb.RefusalReason_REFUSAL_REASON_DRAINING, "node "+r.self+" is leaving the cluster")
	}
	switch mode {
	case rpcpb.InvokeMode_INVOKE_MODE_WARM_ONLY:
		if checkWarm && !r.local.hasIdle(req) {
			return refuse(rpcpb.RefusalReason_REFUSAL_REASON_NO_WARM_SANDBOX, "no idle sandbox of the version on "+r.self)
		}
	case rpcpb.InvokeMode_INVOKE_MODE_NO_QUEUE:
		ring := r.ring.Ring()
		if inRing(ring, r.self) && !ring.HasRoom(r.self, r.loads.snapshot(ring), r.health.live) {
			return refuse(rpcpb.RefusalReason_REFUSAL_REASON_OVER_LOAD_BOUND, "node "+r.self+" is over its load bound")
		}
	}
	return refusal{}
}

func inRing(ring *placement.Ring, id string) bool {
	return slices.ContainsFunc(ring.Members(), func(m placement.Member) bool { return m.ID == id })
}
