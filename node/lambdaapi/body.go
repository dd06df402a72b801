package lambdaapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
)

// DefaultMaxBufferedBodyBytes is the default bound on the request body bytes
// all of a node's in-flight API requests may hold at once: room for three
// largest CreateFunction uploads beside thousands of ordinary invokes.
const DefaultMaxBufferedBodyBytes = 256 << 20

// bodyBudget bounds the bytes of request bodies held at once by every
// request of one Handler. A request reserves before it reads and keeps its
// reservation until its handler returns (an Invoke's payload lives as long
// as the invocation); a request that cannot reserve is throttled, never
// queued, so the bound holds whatever clients send. Safe for concurrent use.
type bodyBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

// reservation is one request's share of the budget.
type reservation struct {
	b *bodyBudget
	n int64
}

// grow adds n bytes to the reservation, or reports false and adds nothing
// when the budget cannot hold them.
func (r *reservation) grow(n int64) bool {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.b.used+n > r.b.limit {
		return false
	}
	r.b.used += n
	r.n += n
	return true
}

// release returns the whole reservation to the budget.
func (r *reservation) release() {
	r.b.mu.Lock()
	r.b.used -= r.n
	r.b.mu.Unlock()
	r.n = 0
}

// BufferedBodyBytes is how many request body bytes the handler's requests
// hold (have reserved) right now.
func (h *Handler) BufferedBodyBytes() int64 {
	h.budget.mu.Lock()
	defer h.budget.mu.Unlock()
	return h.budget.used
}

// firstBodyChunk is the buffer a body starts in; it doubles from there as
// bytes actually arrive.
const firstBodyChunk = 64 << 10

// readBody reads r's body, bounded by o.maxBody and by the handler's body
// budget, into a buffer that grows only as bytes arrive: a claimed
// Content-Length is checked against the bound and reserved from the budget
// (so a request that cannot be held is throttled before a byte is read),
// never allocated up front. The returned release gives the reservation back
// and must be called once the body is no longer used.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, o op) ([]byte, func(), *Error) {
	res := &reservation{b: h.budget}
	if r.ContentLength > o.maxBody {
		return nil, res.release, tooLarge(o)
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, res.release, nil
	}
	known := r.ContentLength > 0
	if known && !res.grow(r.ContentLength) {
		return nil, res.release, bodyThrottled()
	}
	src := http.MaxBytesReader(w, r.Body, o.maxBody)
	var buf []byte
	for !known || int64(len(buf)) < r.ContentLength {
		if len(buf) == cap(buf) {
			next := max(2*int64(cap(buf)), firstBodyChunk)
			if known {
				next = min(next, r.ContentLength)
			} else {
				// One byte past the bound lets MaxBytesReader report
				// the overflow.
				next = min(next, o.maxBody+1)
				if next > res.n && !res.grow(next-res.n) {
					return nil, res.release, bodyThrottled()
				}
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				return nil, res.release, tooLarge(o)
			case errors.Is(err, os.ErrDeadlineExceeded):
				return nil, res.release, requestTimeout("The request body did not arrive in time: after a grace period it must keep a minimum rate (see docs/api.md)")
			}
			return nil, res.release, invalidRequestContent("Could not read the request body: %v", err)
		}
	}
	return buf, res.release, nil
}

func bodyThrottled() *Error {
	return TooManyRequests(ReasonCallerRateLimitExceeded,
		"Rate exceeded: the node is holding as many request bodies as it may; retry later", 1)
}

func tooLarge(o op) *Error {
	if o.name == "Invoke" {
		return requestTooLarge("Request must be smaller than %d bytes for the InvokeFunction operation", o.maxBody)
	}
	return requestTooLarge("Request must be smaller than %d bytes for the %s operation", o.maxBody, o.name)
}
