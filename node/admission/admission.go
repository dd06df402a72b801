// Package admission enforces Lambda's concurrency limits before an
// invocation may run: each account's concurrency limit, split into the
// functions' reserved concurrency and the unreserved pool every other
// function shares.
//
// Two Admitters implement it. Limiter counts on one node. LeaseAdmitter
// enforces the limits across a cluster without a Raft write per
// invocation: a Coordinator (run by the Raft leader) leases each node a
// slice of every pool, sized from the demand the nodes report and renewed
// in the background; a node admits only within the slice it holds. A
// late renewal changes nothing while the lease lasts; a node cut off from
// the coordinator past its lease falls back to its fair share of each
// pool it held (the limit over the nodes), which the coordinator charges
// it meanwhile. docs/architecture.md ("Admission and placement") states
// the guarantee and its proof sketch.
package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Throttle reasons, as Lambda names them in TooManyRequestsException.
const (
	ReasonAccount  = "ConcurrentInvocationLimitExceeded"
	ReasonReserved = "ReservedFunctionConcurrentInvocationLimitExceeded"
)

// ErrThrottled is wrapped by every refusal; ThrottleError says why.
var ErrThrottled = errors.New("admission: throttled")

// ThrottleError is a refusal with Lambda's reason.
type ThrottleError struct {
	Reason string
	Limit  int
	// Cause, when set, says why the node could not admit although the
	// cluster-wide count may be under the limit (no lease could be had).
	Cause string
}

// Error says which limit refused the invocation and, when the pool was
// not simply full, the real cause instead of claiming that it was.
func (e *ThrottleError) Error() string {
	pool := fmt.Sprintf("the account's unreserved concurrency of %d", e.Limit)
	if e.Reason == ReasonReserved {
		pool = fmt.Sprintf("the function's reserved concurrency of %d", e.Limit)
	}
	if e.Cause == "" {
		return "Rate Exceeded. " + strings.ToUpper(pool[:1]) + pool[1:] + " is in use."
	}
	return "Rate Exceeded. This node could not admit the invocation under " + pool + ": " + e.Cause + "."
}

func (e *ThrottleError) Unwrap() error { return ErrThrottled }

// Request describes what an invocation needs admitted.
type Request struct {
	AccountID string
	Function  string
	// Reserved is the function's reserved concurrency, nil when it has none.
	Reserved *int32
	// AccountLimit is the account's concurrency limit; ReservedTotal the
	// sum of reserved concurrency over all its functions.
	AccountLimit  int
	ReservedTotal int
}

// Pool names a concurrency pool: a function's reserved concurrency, or the
// unreserved pool of its account when Function is empty.
type Pool struct {
	AccountID string
	Function  string
}

func (p Pool) String() string {
	if p.Function == "" {
		return p.AccountID + "/(unreserved)"
	}
	return p.AccountID + "/" + p.Function
}

// PoolOf is the pool an invocation draws on.
func PoolOf(req Request) Pool {
	if req.Reserved != nil {
		return Pool{AccountID: req.AccountID, Function: req.Function}
	}
	return Pool{AccountID: req.AccountID}
}

// limitOf is the pool's limit as the request's replica sees it (for
// messages; the coordinator decides from its own replica).
func limitOf(req Request) int {
	if req.Reserved != nil {
		return int(*req.Reserved)
	}
	return max(req.AccountLimit-req.ReservedTotal, 0)
}

func throttle(req Request, cause string) *ThrottleError {
	reason := ReasonAccount
	if req.Reserved != nil {
		reason = ReasonReserved
	}
	return &ThrottleError{Reason: reason, Limit: limitOf(req), Cause: cause}
}

// Admitter admits invocations. Admit may block briefly (bounded by ctx) to
// obtain capacity; a refusal wraps ErrThrottled. Release must be called
// exactly once for every admitted invocation, when it has certainly ended:
// a caller that lost track of an invocation (its node died, the caller went
// away) releases only once the invocation's deadline has passed, or the
// limit no longer holds.
type Admitter interface {
	Admit(ctx context.Context, req Request) (release func(), err error)
}

// Limiter is the single-node Admitter: in-flight counts per function (for
// reserved concurrency) and per account (for the unreserved pool).
type Limiter struct {
	mu         sync.Mutex
	reserved   map[string]int // account/function -> in flight
	unreserved map[string]int // account -> in flight of functions without reservation
}

// NewLimiter returns an empty single-node limiter.
func NewLimiter() *Limiter {
	return &Limiter{reserved: map[string]int{}, unreserved: map[string]int{}}
}

// Admit takes one unit of the function's reserved concurrency, or of the
// account's unreserved pool (limit minus everything reserved). It never
// blocks.
func (l *Limiter) Admit(_ context.Context, req Request) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if req.Reserved != nil {
		key := req.AccountID + "/" + req.Function
		limit := int(*req.Reserved)
		if l.reserved[key] >= limit {
			return nil, &ThrottleError{Reason: ReasonReserved, Limit: limit}
		}
		l.reserved[key]++
		return l.releaser(func() {
			if l.reserved[key]--; l.reserved[key] == 0 {
				delete(l.reserved, key)
			}
		}), nil
	}
	pool := max(req.AccountLimit-req.ReservedTotal, 0)
	if l.unreserved[req.AccountID] >= pool {
		return nil, &ThrottleError{Reason: ReasonAccount, Limit: pool}
	}
	l.unreserved[req.AccountID]++
	return l.releaser(func() {
		if l.unreserved[req.AccountID]--; l.unreserved[req.AccountID] == 0 {
			delete(l.unreserved, req.AccountID)
		}
	}), nil
}

// releaser makes release idempotent and takes the lock for dec.
func (l *Limiter) releaser(dec func()) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			dec()
			l.mu.Unlock()
		})
	}
}

// InFlight returns the invocations admitted and not yet released for an
// account (reserved and unreserved together).
func (l *Limiter) InFlight(accountID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.unreserved[accountID]
	prefix := accountID + "/"
	for k, v := range l.reserved {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			n += v
		}
	}
	return n
}
