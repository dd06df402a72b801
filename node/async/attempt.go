package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Outcome classifies one delivery attempt.
type Outcome uint8

const (
	// OutcomeSuccess: the function returned normally.
	OutcomeSuccess Outcome = iota
	// OutcomeFunctionError: the function ran and failed (an error, a crash,
	// a timeout); retried MaximumRetryAttempts times.
	OutcomeFunctionError
	// OutcomeThrottled: admission refused the invocation (429); retried
	// with backoff until the event's maximum age.
	OutcomeThrottled
	// OutcomeSystemError: the platform failed (no sandbox, node leaving,
	// payload unreachable, ...); retried like a throttle.
	OutcomeSystemError
)

func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeFunctionError:
		return "function_error"
	case OutcomeThrottled:
		return "throttled"
	case OutcomeSystemError:
		return "system_error"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Attempt describes one delivery attempt (Config.OnAttempt).
type Attempt struct {
	EventID   string
	AccountID string
	Function  string
	// Node is the node that delivered it (this one).
	Node    string
	Outcome Outcome
	// FunctionErrors is the event's count of function-error attempts,
	// this one included.
	FunctionErrors int
	// Started is when the invocation was handed to the invoke path; Age
	// is the time from acceptance (the leader's clock) to then.
	Started time.Time
	Age     time.Duration
}

// Conditions of a destination record (Lambda's requestContext.condition).
const (
	conditionSuccess = "Success"
	conditionRetries = "RetriesExhausted"
	conditionAge     = "EventAgeExceeded"
)

// invokeSlack is added to the function's timeout for an attempt's deadline.
const invokeSlack = 30 * time.Second

type decisionKind uint8

const (
	decideRetry    decisionKind = iota // back in the queue at decision.at
	decideSettling                     // the outcome is being committed
	decideForget                       // not this node's to deliver (any more)
)

type decision struct {
	kind decisionKind
	at   time.Time
}

// result is what one attempt returned.
type result struct {
	outcome       Outcome
	statusCode    int
	version       string // executed version
	functionError string // "Unhandled" for function errors
	errorType     string
	errorMessage  string
	payload       []byte // the function's response (success or error body)
}

// final is an event's decided fate; only its hand-off remains.
type final struct {
	condition string
	res       *result         // last attempt; nil if none reached the function
	sent      map[string]bool // targets already handed the record
}

// policy is what applies to an event: its function's EventInvokeConfig
// (for the invoked qualifier) and dead-letter target (of the executed
// version's configuration), with Lambda's defaults.
type policy struct {
	maxRetries int
	maxAge     time.Duration // scaled
	onSuccess  *lambdaapi.Target
	onFailure  *lambdaapi.Target
	deadLetter *lambdaapi.Target
}

// policy reads ev's policy; cfg is the executed version's configuration
// (nil when the function or version is gone), which names the dead-letter
// target.
func (q *Queue) policy(v *fsm.View, ev *fsmpb.AsyncEvent, cfg *fsmpb.FunctionConfig) policy {
	pol := policy{maxRetries: fsm.MaxRetryAttempts, maxAge: q.cfg.scaled(fsm.MaxEventAgeSeconds * time.Second)}
	target := func(arn, what string) *lambdaapi.Target {
		if arn == "" {
			return nil
		}
		t, err := lambdaapi.ParseTarget(q.cfg.Region, ev.AccountId, arn)
		if err != nil {
			q.log.Warn("ignoring an unusable target", "function", ev.FunctionName, "target", what, "arn", arn, "err", err.Message)
			return nil
		}
		return &t
	}
	if c := v.EventInvokeConfig(ev.AccountId, ev.FunctionName, ev.Qualifier); c != nil {
		if c.HasMaximumRetryAttempts {
			pol.maxRetries = int(c.MaximumRetryAttempts)
		}
		if c.HasMaximumEventAgeS {
			pol.maxAge = q.cfg.scaled(time.Duration(c.MaximumEventAgeS) * time.Second)
		}
		pol.onSuccess = target(c.GetDestinations().GetOnSuccess(), "OnSuccess")
		pol.onFailure = target(c.GetDestinations().GetOnFailure(), "OnFailure")
	}
	if cfg != nil {
		pol.deadLetter = target(cfg.DeadLetterTargetArn, "DeadLetterConfig")
	}
	return pol
}

var errGone = errors.New("async: function or version no longer exists")

// invokeRequest rebuilds the invocation from the replicated state: the
// version resolved at acceptance, with its configuration as it is now.
func (q *Queue) invokeRequest(v *fsm.View, ev *fsmpb.AsyncEvent) (*lambdaapi.InvokeRequest, error) {
	req, err := requestFor(v, ev.AccountId, ev.FunctionName, ev.Version)
	if err != nil {
		return nil, err
	}
	req.RequestID, req.InvokedARN = ev.Id, ev.InvokedArn
	return req, nil
}

// requestFor returns an invocation of a function's version ("" or
// $LATEST: the unpublished code) with its configuration, revision and
// reserved concurrency as they are now, or errGone when the function or
// version does not exist.
func requestFor(v *fsm.View, accountID, function, version string) (*lambdaapi.InvokeRequest, error) {
	fn := v.Function(accountID, function)
	if fn == nil {
		return nil, errGone
	}
	req := &lambdaapi.InvokeRequest{AccountID: accountID, FunctionName: function,
		Version: fsm.VersionLatest, Config: fn.Config, Revision: fn.RevisionId}
	if version != "" && version != fsm.VersionLatest {
		n, err := strconv.ParseInt(version, 10, 64)
		ver := v.Version(accountID, function, n)
		if err != nil || ver == nil {
			return nil, errGone
		}
		req.Version, req.Config, req.Revision = version, ver.Config, ver.RevisionId
	}
	if fn.HasReservedConcurrency {
		n := fn.ReservedConcurrency
		req.ReservedConcurrency = &n
	}
	return req, nil
}

// retryDelay is the wait after the n-th function-error attempt.
func (q *Queue) retryDelay(n int32) time.Duration {
	d := q.cfg.FunctionErrorDelays
	return q.cfg.scaled(d[min(int(max(n, 1))-1, len(d)-1)])
}

// backoff schedules the next try after a throttle or system error: the
// wait doubles from BackoffMin to BackoffMax, with jitter in its upper
// half, and never passes the event's deadline (where it expires).
func (q *Queue) backoff(t *task, deadline time.Time, r *result) decision {
	if r != nil {
		t.last = r
	}
	t.backoffs++
	d := q.cfg.BackoffMax
	if shift := t.backoffs - 1; shift < 30 && q.cfg.BackoffMin<<shift < d {
		d = q.cfg.BackoffMin << shift
	}
	d = q.cfg.scaled(d)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	at := time.Now().Add(d)
	if at.After(deadline) {
		at = deadline
	}
	return decision{kind: decideRetry, at: at}
}

// classify turns what the invoke path returned into a result.
func classify(res *lambdaapi.InvokeResult, err error, version string) *result {
	if err == nil {
		r := &result{outcome: OutcomeSuccess, statusCode: 200, version: version, payload: res.Payload}
		if res.FunctionError != "" {
			r.outcome, r.functionError = OutcomeFunctionError, res.FunctionError
			var body struct {
				ErrorType    string `json:"errorType"`
				ErrorMessage string `json:"errorMessage"`
			}
			_ = json.Unmarshal(res.Payload, &body)
			r.errorType, r.errorMessage = body.ErrorType, body.ErrorMessage
			if r.errorType == "" {
				r.errorType = res.FunctionError
			}
		}
		return r
	}
	var ae *lambdaapi.Error
	if errors.As(err, &ae) {
		r := &result{outcome: OutcomeSystemError, statusCode: ae.Status, version: version, errorType: ae.Type, errorMessage: ae.Message}
		if ae.Type == "TooManyRequestsException" {
			r.outcome = OutcomeThrottled
		}
		return r
	}
	// The message reaches the tenant (destinations, dead letters); the
	// error's own text may name host paths, so only its class is told
	// (attempt logs the cause).
	msg := "The invocation failed on the platform."
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "The invocation did not complete in time."
	}
	return &result{outcome: OutcomeSystemError, statusCode: 500, version: version, errorType: "ServiceException", errorMessage: msg}
}

// attempt delivers t's event once (or finishes its hand-off) and decides
// what happens to the task next.
func (q *Queue) attempt(ctx context.Context, t *task) decision {
	v := q.deps.Replica.View()
	ev := v.AsyncEvent(t.id)
	if ev == nil || ev.State != fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING || !q.owns(ev) {
		return decision{kind: decideForget}
	}
	// One resolution of the executed version serves both the policy (its
	// dead-letter target) and the invocation.
	req, reqErr := q.invokeRequest(v, ev)
	var cfg *fsmpb.FunctionConfig
	if reqErr == nil {
		cfg = req.Config
	}
	pol := q.policy(v, ev, cfg)
	if t.final != nil {
		return q.handOff(ctx, t, ev, pol)
	}
	now := time.Now()
	accepted := time.Unix(0, ev.AcceptedUnixNano)
	deadline := accepted.Add(pol.maxAge)
	if !now.Before(deadline) {
		q.m.expired.WithLabelValues(ev.AccountId, ev.FunctionName).Inc()
		t.final = &final{condition: conditionAge, res: t.last}
		return q.handOff(ctx, t, ev, pol)
	}
	if reqErr != nil {
		q.m.dropped.WithLabelValues(ev.AccountId, ev.FunctionName, "function_deleted").Inc()
		q.log.Info("dropping an event whose function or version was deleted", "event", ev.Id, "function", ev.FunctionName, "version", ev.Version)
		return q.finish(t, &fsmpb.AsyncEventUpdate{Id: ev.Id, Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE})
	}
	p, err := q.payload(ctx, ev)
	if err != nil {
		if ctx.Err() != nil {
			return decision{kind: decideForget}
		}
		q.log.Warn("event payload unavailable; will retry", "event", ev.Id, "err", err)
		q.m.retried.WithLabelValues(ev.AccountId, ev.FunctionName, OutcomeSystemError.String()).Inc()
		return q.backoff(t, deadline, &result{outcome: OutcomeSystemError, statusCode: 500, version: req.Version,
			errorType: "ServiceException", errorMessage: "The event's payload was unavailable on the node delivering it."})
	}
	req.Payload, req.ClientContext = p.Payload, p.ClientContext

	started := time.Now()
	q.m.eventAge.WithLabelValues(ev.AccountId, ev.FunctionName).Observe(started.Sub(accepted).Seconds())
	ictx, cancel := context.WithTimeout(ctx, time.Duration(req.Config.GetTimeoutS())*time.Second+invokeSlack)
	res, err := q.deps.Invoker.Invoke(ictx, req)
	cancel()
	if ctx.Err() != nil {
		// Closing: whichever node owns the event next delivers it.
		return decision{kind: decideForget}
	}
	r := classify(res, err, req.Version)
	if ae := (*lambdaapi.Error)(nil); err != nil && !errors.As(err, &ae) {
		q.log.Warn("async invocation failed on the platform; will retry", "event", ev.Id, "function", ev.FunctionName, "err", err)
	}
	t.attempts = max(t.attempts, ev.Attempts)
	t.invokeCount = max(t.invokeCount, ev.InvokeCount)
	if r.outcome == OutcomeSuccess || r.outcome == OutcomeFunctionError {
		t.invokeCount++
	}
	if r.outcome == OutcomeFunctionError {
		t.attempts++
	}
	if q.cfg.OnAttempt != nil {
		q.cfg.OnAttempt(Attempt{EventID: ev.Id, AccountID: ev.AccountId, Function: ev.FunctionName, Node: q.cfg.NodeID,
			Outcome: r.outcome, FunctionErrors: int(t.attempts), Started: started, Age: started.Sub(accepted)})
	}
	switch r.outcome {
	case OutcomeSuccess:
		q.m.delivered.WithLabelValues(ev.AccountId, ev.FunctionName).Inc()
		t.final = &final{condition: conditionSuccess, res: r}
		return q.handOff(ctx, t, ev, pol)
	case OutcomeFunctionError:
		t.last, t.backoffs = r, 0
		if int(t.attempts) > pol.maxRetries {
			t.final = &final{condition: conditionRetries, res: r}
			return q.handOff(ctx, t, ev, pol)
		}
		q.m.retried.WithLabelValues(ev.AccountId, ev.FunctionName, r.outcome.String()).Inc()
		q.set.settle(&fsmpb.AsyncEventUpdate{Id: ev.Id, Action: fsmpb.AsyncAction_ASYNC_ACTION_RETRY, Attempts: t.attempts,
			InvokeCount: t.invokeCount, ErrorType: r.errorType, ErrorMessage: r.errorMessage, StatusCode: int32(r.statusCode)}, nil)
		at := time.Now().Add(q.retryDelay(t.attempts))
		if at.After(deadline) {
			at = deadline
		}
		return decision{kind: decideRetry, at: at}
	default:
		q.m.retried.WithLabelValues(ev.AccountId, ev.FunctionName, r.outcome.String()).Inc()
		return q.backoff(t, deadline, r)
	}
}

// handOff sends a decided event's record to its targets (on-success
// destination; or on-failure destination and dead-letter target) and
// commits its outcome. A target that cannot take the record for a
// transient reason is retried with backoff, without invoking the function
// again; one that cannot take it at all is counted and skipped.
func (q *Queue) handOff(ctx context.Context, t *task, ev *fsmpb.AsyncEvent, pol policy) decision {
	f := t.final
	if f.sent == nil {
		f.sent = map[string]bool{}
	}
	type target struct {
		kind string // "destination" or "dead-letter"
		t    *lambdaapi.Target
	}
	var targets []target
	if f.condition == conditionSuccess {
		if pol.onSuccess != nil {
			targets = append(targets, target{"destination", pol.onSuccess})
		}
	} else {
		if pol.onFailure != nil {
			targets = append(targets, target{"destination", pol.onFailure})
		}
		if pol.deadLetter != nil {
			targets = append(targets, target{"dead-letter", pol.deadLetter})
		}
	}
	builtin := false
	for _, tg := range targets {
		if tg.t.Kind == lambdaapi.TargetDeadLetterQueue {
			builtin = true
			continue
		}
		key := tg.kind + " " + tg.t.ARN
		if f.sent[key] {
			continue
		}
		permanent, err := q.sendRecord(ctx, t, ev, tg.t, f)
		switch {
		case err == nil:
			if f.condition != conditionSuccess {
				q.m.deadLettered.WithLabelValues(ev.AccountId, ev.FunctionName, "function").Inc()
			}
		case !permanent && ctx.Err() == nil:
			q.log.Warn("record not handed to its target yet; will retry", "event", ev.Id, "target", tg.t.ARN, "err", err)
			return q.backoff(t, time.Now().Add(q.cfg.BackoffMax), nil)
		case ctx.Err() != nil:
			return decision{kind: decideForget}
		default:
			q.log.Warn("record could not be handed to its target", "event", ev.Id, "target", tg.t.ARN, "err", err)
			if tg.kind == "dead-letter" {
				q.m.dlqErrors.WithLabelValues(ev.AccountId, ev.FunctionName).Inc()
			} else {
				q.m.destFailures.WithLabelValues(ev.AccountId, ev.FunctionName).Inc()
			}
		}
		f.sent[key] = true
	}
	u := &fsmpb.AsyncEventUpdate{Id: ev.Id, Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE}
	switch {
	case f.condition == conditionSuccess:
	case builtin:
		u.Action, u.Condition, u.Attempts, u.InvokeCount = fsmpb.AsyncAction_ASYNC_ACTION_DEAD_LETTER, f.condition, t.attempts, t.invokeCount
		if r := f.res; r != nil {
			u.ErrorType, u.ErrorMessage, u.StatusCode = r.errorType, r.errorMessage, int32(r.statusCode)
		}
		q.m.deadLettered.WithLabelValues(ev.AccountId, ev.FunctionName, "stoke-dlq").Inc()
	case len(targets) == 0:
		q.m.dropped.WithLabelValues(ev.AccountId, ev.FunctionName, f.condition).Inc()
		q.log.Info("dropping a failed event: its function has no dead-letter target or on-failure destination",
			"event", ev.Id, "function", ev.FunctionName, "condition", f.condition)
	}
	return q.finish(t, u)
}

// finish commits a task's last outcome. The task stays (settling) until
// the outcome commits, so that no pass over the replicated state, which
// still shows the event pending, plans it again meanwhile.
func (q *Queue) finish(t *task, u *fsmpb.AsyncEventUpdate) decision {
	q.sched.mu.Lock()
	t.state = taskSettling
	q.sched.mu.Unlock()
	q.set.settle(u, func(err error) {
		if err == nil && u.Action == fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE {
			q.store.Delete(u.Id)
		}
		q.sched.settled(u.Id)
	})
	return decision{kind: decideSettling}
}
