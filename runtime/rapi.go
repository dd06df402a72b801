package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// The Runtime API (2018-06-01) as the agent serves it. One http.Server
// serves every sandbox: each sandbox's listener is wrapped so that its
// connections carry the sandbox, and handlers act only on that sandbox's
// state. A misbehaving runtime can therefore only fail its own invocation.

const (
	rapiPrefix = "/2018-06-01/runtime"
	// maxRAPIConns bounds a sandbox's simultaneous connections to its API
	// (each costs the agent a goroutine and buffers); more wait in the
	// kernel's accept queue.
	maxRAPIConns = 4
	// maxInitErrorBytes bounds an /init/error body.
	maxInitErrorBytes = 64 << 10
)

// invocation is one event on its way through a sandbox.
type invocation struct {
	Invocation
	deadline time.Time
	done     chan outcome // buffered(1): receives exactly one outcome
	claimed  bool         // a /response or /error is being read (sandbox.mu)
}

// outcome is what the runtime reported for an invocation.
type outcome struct {
	payload []byte
	funcErr string // "" or "Unhandled"
	errType string // for the REPORT line
}

type sandboxKey struct{}

type sandboxListener struct {
	net.Listener
	sb *sandbox
}

type sandboxConn struct {
	net.Conn
	sb *sandbox
}

func (l sandboxListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sandboxConn{Conn: c, sb: l.sb}, nil
}

// rapiServer is the pool's single Runtime API server.
type rapiServer struct {
	srv *http.Server
	wg  sync.WaitGroup
}

func newRAPIServer() *rapiServer {
	mux := http.NewServeMux()
	mux.Handle("GET "+rapiPrefix+"/invocation/next", sandboxHandler(handleNext))
	mux.Handle("POST "+rapiPrefix+"/invocation/{id}/response", sandboxHandler(handleResponse))
	mux.Handle("POST "+rapiPrefix+"/invocation/{id}/error", sandboxHandler(handleError))
	mux.Handle("POST "+rapiPrefix+"/init/error", sandboxHandler(handleInitError))
	return &rapiServer{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A runtime keeps one connection open for its whole life.
		IdleTimeout:    24 * time.Hour,
		MaxHeaderBytes: 64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*sandboxConn); ok {
				return context.WithValue(ctx, sandboxKey{}, sc.sb)
			}
			return ctx
		},
		ErrorLog: nil,
	}}
}

// serve starts serving sb's listener; it stops when the listener closes.
func (s *rapiServer) serve(sb *sandbox, ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(sandboxListener{Listener: netutil.LimitListener(ln, maxRAPIConns), sb: sb})
	}()
}

func (s *rapiServer) close() {
	_ = s.srv.Close()
	s.wg.Wait()
}

// sandboxHandler hands h the sandbox the request's connection belongs to.
// Every connection the server accepts comes from a sandboxListener, so a
// request without one is the agent's bug; it is refused rather than let a
// handler dereference nil.
func sandboxHandler(h func(http.ResponseWriter, *http.Request, *sandbox)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sb, _ := r.Context().Value(sandboxKey{}).(*sandbox)
		if sb == nil {
			rapiError(w, http.StatusInternalServerError, "Runtime.Unknown", "no sandbox for this connection")
			return
		}
		h(w, r, sb)
	}
}

// rapiError answers like Lambda's Runtime API does.
func rapiError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(errType, msg))
}

func handleNext(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	sb.mu.Lock()
	switch {
	case sb.nextWaiting:
		sb.mu.Unlock()
		rapiError(w, http.StatusForbidden, "InvalidStateTransition", "another /next request is already waiting")
		return
	case sb.current != nil:
		sb.mu.Unlock()
		rapiError(w, http.StatusForbidden, "InvalidStateTransition", "invocation "+sb.current.RequestID+" is still running; post its response or error first")
		return
	case sb.initErr != nil:
		// Init already failed. Closing initDone now as well would let the
		// cold start's select pick either outcome.
		sb.mu.Unlock()
		rapiError(w, http.StatusForbidden, "InvalidStateTransition", "Init failed (/init/error was posted); no invocations follow")
		return
	}
	sb.nextWaiting = true
	if !sb.initSignaled {
		sb.initSignaled = true
		close(sb.initDone)
	}
	sb.mu.Unlock()
	// An idle sandbox is frozen here, parked on /next (see
	// freezeWhenWaiting). A failure leaves it running; it is still usable.
	_ = sb.nextArrived()

	var inv *invocation
	select {
	case inv = <-sb.dispatch:
	case <-r.Context().Done():
	case <-sb.gone:
	}
	sb.mu.Lock()
	sb.nextWaiting = false
	if inv != nil {
		sb.current = inv
	}
	sb.mu.Unlock()
	if inv == nil {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.RequestID)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", inv.InvokedFunctionARN)
	if inv.TraceID != "" {
		h.Set("Lambda-Runtime-Trace-Id", inv.TraceID)
	}
	if inv.ClientContext != "" {
		h.Set("Lambda-Runtime-Client-Context", inv.ClientContext)
	}
	if inv.CognitoIdentity != "" {
		h.Set("Lambda-Runtime-Cognito-Identity", inv.CognitoIdentity)
	}
	h.Set("Content-Length", strconv.Itoa(len(inv.Payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
}

// claim marks the current invocation as being answered, if id names it.
func (sb *sandbox) claim(id string) *invocation {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	inv := sb.current
	if inv == nil || inv.RequestID != id || inv.claimed {
		return nil
	}
	inv.claimed = true
	return inv
}

func (sb *sandbox) unclaim(inv *invocation) {
	sb.mu.Lock()
	inv.claimed = false
	sb.mu.Unlock()
}

// finish hands the outcome to the waiting invoke and frees the sandbox
// for its next /next.
func (sb *sandbox) finish(inv *invocation, o outcome) {
	sb.mu.Lock()
	if sb.current == inv {
		sb.current = nil
	}
	sb.mu.Unlock()
	inv.done <- o
}

// readBounded reads at most limit bytes; tooLarge reports a longer body,
// which is left unread (net/http then closes the connection).
func readBounded(r *http.Request, limit int64) (body []byte, tooLarge bool, err error) {
	if r.ContentLength > limit {
		return nil, true, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, err
	}
	if n > limit {
		return nil, true, nil
	}
	return buf.Bytes(), false, nil
}

func handleResponse(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	answer(w, r, sb, "response", func(body []byte) outcome { return outcome{payload: body} })
}

func handleError(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	errType := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	answer(w, r, sb, "error", func(body []byte) outcome {
		return outcome{payload: functionErrorPayload(body, errType), funcErr: FunctionErrorUnhandled, errType: errTypeOf(body, errType)}
	})
}

// answer ends the invocation named in the path with the outcome build makes
// of the request body or, past MaxResponseBytes, with
// Function.ResponseSizeTooLarge; what names the body in error messages. A
// body that cannot be read leaves the invocation open for another attempt.
func answer(w http.ResponseWriter, r *http.Request, sb *sandbox, what string, build func(body []byte) outcome) {
	id := r.PathValue("id")
	inv := sb.claim(id)
	if inv == nil {
		rapiError(w, http.StatusBadRequest, "InvalidRequestID", "request id "+strconv.Quote(id)+" is not the invocation in progress in this sandbox")
		return
	}
	body, tooLarge, err := readBounded(r, MaxResponseBytes)
	if err != nil {
		sb.unclaim(inv)
		rapiError(w, http.StatusBadRequest, "InvalidRequest", "reading the "+what+" body: "+err.Error())
		return
	}
	if tooLarge {
		// ContentLength is -1 when the runtime sent none.
		sb.finish(inv, outcome{payload: tooLargeBody(r.ContentLength), funcErr: FunctionErrorUnhandled, errType: ErrTypeResponseTooLarge})
		rapiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"Exceeded maximum allowed payload size ("+strconv.Itoa(MaxResponseBytes)+" bytes).")
		return
	}
	sb.finish(inv, build(body))
	accepted(w)
}

func handleInitError(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	body, tooLarge, err := readBounded(r, maxInitErrorBytes)
	if err != nil {
		rapiError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	errType := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	if tooLarge {
		body = nil
	}
	sb.mu.Lock()
	if sb.initSignaled || sb.initErr != nil {
		sb.mu.Unlock()
		rapiError(w, http.StatusForbidden, "InvalidStateTransition", "/init/error is only allowed during Init")
		return
	}
	sb.initErr = functionErrorPayload(body, errType)
	sb.initErrType = errTypeOf(body, errType)
	close(sb.initFailed)
	sb.mu.Unlock()
	accepted(w)
}

// initFailure returns what the runtime reported through /init/error
// (valid once initFailed is closed).
func (sb *sandbox) initFailure() (body []byte, errType string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.initErr, sb.initErrType
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

// functionErrorPayload is what the caller sees for a reported error: the
// runtime's JSON object as is, or, when the runtime sent something else,
// Lambda's shape built around it.
func functionErrorPayload(body []byte, errType string) []byte {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		return body
	}
	if errType == "" {
		errType = ErrTypeUnknown
	}
	return errorBody(errType, string(body))
}

func errTypeOf(body []byte, header string) string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &e) == nil && e.ErrorType != "" {
		return e.ErrorType
	}
	if header != "" {
		return header
	}
	return ErrTypeUnknown
}
