package httpguard

import (
	"io"
	"net/http"
	"time"
)

// BodyDeadlines wraps next so that every request body is read under a
// deadline that grows with what has arrived: the first BodyGrace is free,
// then the body must average at least BodyMinRate bytes per second. A read
// past the deadline fails with an error matching os.ErrDeadlineExceeded and
// the server closes the connection once the handler returns. Once the body
// is complete no deadline is set any more, so a handler that then runs for
// minutes (an invocation) keeps its connection. Requests without a body
// are passed through untouched.
func (c Config) BodyDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), start: time.Now(),
			grace: c.BodyGrace, rate: c.BodyMinRate, length: r.ContentLength}
		// Armed before the handler runs: a handler that never reads the
		// body still leaves the server to drain it afterwards, and that
		// drain must not wait forever either.
		b.arm()
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

// deadlineBody moves the connection's read deadline before every read of
// the body. It is used by the one goroutine that reads the body.
type deadlineBody struct {
	io.ReadCloser
	rc          *http.ResponseController
	start       time.Time
	grace       time.Duration
	rate        int64
	length      int64 // -1: unknown (chunked)
	read        int64
	done        bool
	unsupported bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done || b.unsupported {
		return b.ReadCloser.Read(p)
	}
	b.arm()
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err != nil || (b.length >= 0 && b.read >= b.length) {
		// Complete (or failed): no more deadlines. The server lifts the
		// last one itself when the body hits EOF and it starts watching
		// the connection for the client going away.
		b.done = true
	}
	return n, err
}

// arm sets the deadline for what has arrived so far.
func (b *deadlineBody) arm() {
	if b.unsupported {
		return
	}
	allowed := b.grace + time.Duration(float64(b.read)/float64(b.rate)*float64(time.Second))
	if err := b.rc.SetReadDeadline(b.start.Add(allowed)); err != nil {
		// A ResponseWriter without deadlines (a test recorder, or a
		// wrapper that hides them): nothing to enforce here.
		b.unsupported = true
	}
}
