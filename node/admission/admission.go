// Package admission enforces Lambda's concurrency limits before an
// invocation may run: each account's concurrency limit, split into the
// functions' reserved concurrency and the unreserved pool every other
// function shares.
//
// The Limiter here counts on one node. The cluster-wide limiter (leases of
// concurrency from a coordinator) implements the same Admitter interface.
package admission

import (
	"errors"
	"fmt"
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
}

func (e *ThrottleError) Error() string {
	if e.Reason == ReasonReserved {
		return fmt.Sprintf("Rate Exceeded. The function's reserved concurrency of %d is in use.", e.Limit)
	}
	return fmt.Sprintf("Rate Exceeded. The account's unreserved concurrency of %d is in use.", e.Limit)
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

// Admitter admits invocations. Release must be called exactly once for
// every admitted invocation, when it ends.
type Admitter interface {
	Admit(req Request) (release func(), err error)
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
// account's unreserved pool (limit minus everything reserved).
func (l *Limiter) Admit(req Request) (func(), error) {
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
