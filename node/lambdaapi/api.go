package lambdaapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Metadata is the replicated state as the API needs it: writes through the
// leader, local reads for the invoke path, consistent reads for the
// control plane. node.Metadata implements it.
type Metadata interface {
	Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error)
	View() *fsm.View
	ConsistentView(ctx context.Context) (*fsm.View, error)
}

// CodeInfo identifies a stored code package.
type CodeInfo struct {
	BlobID       string // content address the FSM records
	CodeSha256   string // Lambda's CodeSha256: base64 SHA-256 of the zip
	Size         int64  // bytes of the zip
	UnpackedSize int64
}

// ErrInvalidCode wraps every reason a CodeStore refuses an archive; the
// message after it is shown to the user.
var ErrInvalidCode = errors.New("invalid code package")

// ErrCodeStorageExceeded is returned by a CodeStore when the account has
// no room left for the package.
var ErrCodeStorageExceeded = errors.New("code storage limit exceeded")

// CodeStore validates, stores and serves function code packages.
type CodeStore interface {
	// Put validates zip, stores it durably and returns its identity; the
	// code is for function, which the store may use to place it where
	// the function will run. Errors wrapping ErrInvalidCode are the
	// user's fault.
	Put(ctx context.Context, accountID, function string, zip []byte) (CodeInfo, error)
	// OpenZip returns the original zip of a stored package.
	OpenZip(ctx context.Context, blobID string) (io.ReadCloser, int64, error)
}

// Principal is the authenticated caller of a request.
type Principal struct {
	AccountID   string
	AccessKeyID string
	Admin       bool
}

// Authenticator verifies requests (SigV4) in two steps, so that a request
// whose headers do not authenticate it is refused before a byte of its body
// is read. Its errors are *Error values (403 AccessDeniedException shapes).
type Authenticator interface {
	// AuthenticateHeaders checks what r's request line and headers prove
	// and returns the check that finishes with the body. It must not read
	// r.Body.
	AuthenticateHeaders(r *http.Request) (PayloadCheck, error)
}

// PayloadCheck finishes authenticating one request once its body is read.
type PayloadCheck interface {
	AuthenticateBody(body []byte) (Principal, error)
}

// Sealer seals and opens secrets at rest (environment variables).
type Sealer interface {
	Seal(plaintext []byte, context string) ([]byte, error)
	Open(sealed []byte, context string) ([]byte, error)
}

// Config configures the API handler.
type Config struct {
	// Region appears in ARNs and must match ARNs in requests.
	Region string
	// Runtimes lists the runtime identifiers this cluster can run.
	Runtimes []string
	// CodeURLKey signs the short-lived Code.Location download URLs.
	CodeURLKey []byte
	// CodeURLTTL is how long a Code.Location URL stays valid.
	CodeURLTTL time.Duration
	// NodeID is reported in X-Stoke-Node on invocations run here.
	NodeID string
	// MaxBufferedBodyBytes bounds the request body bytes all in-flight
	// requests may hold at once; a request that would pass it is answered
	// 429 TooManyRequestsException before its body is read. Zero means
	// DefaultMaxBufferedBodyBytes.
	MaxBufferedBodyBytes int64

	Logger *slog.Logger
}

// Deps are the components the handler calls.
type Deps struct {
	Meta    Metadata
	Code    CodeStore
	Invoker Invoker
	Async   AsyncInvoker  // nil: Event invocations are refused
	Auth    Authenticator // nil: authentication disabled (--no-auth)
	Sealer  Sealer
	Keys    KeyGenerator
	Metrics *Metrics // nil: no metrics
	// Usage reports cluster-wide concurrency for GetAccountSettings;
	// nil: not reported.
	Usage ConcurrencyUsage
}

// ConcurrencyUsage counts an account's invocations in flight across the
// cluster.
type ConcurrencyUsage interface {
	AccountConcurrency(ctx context.Context, accountID string) (int, error)
}

// Handler serves the Lambda REST API and Stoke's admin API.
type Handler struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	mux    *http.ServeMux
	budget *bodyBudget
}

// New returns the API handler.
func New(cfg Config, deps Deps) (*Handler, error) {
	switch {
	case cfg.Region == "" || len(cfg.Runtimes) == 0 || cfg.Logger == nil:
		return nil, errors.New("lambdaapi: Region, Runtimes and Logger are required")
	case deps.Meta == nil || deps.Code == nil || deps.Invoker == nil || deps.Sealer == nil || deps.Keys == nil:
		return nil, errors.New("lambdaapi: Meta, Code, Invoker, Sealer and Keys are required")
	case len(cfg.CodeURLKey) < 16:
		return nil, errors.New("lambdaapi: CodeURLKey must be at least 16 bytes")
	}
	if cfg.CodeURLTTL <= 0 {
		cfg.CodeURLTTL = 10 * time.Minute
	}
	if cfg.MaxBufferedBodyBytes <= 0 {
		cfg.MaxBufferedBodyBytes = DefaultMaxBufferedBodyBytes
	}
	h := &Handler{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "lambda-api"), mux: http.NewServeMux(),
		budget: &bodyBudget{limit: cfg.MaxBufferedBodyBytes}}
	h.routes()
	return h, nil
}

// op describes one operation: its body bound and handler.
type op struct {
	name    string
	maxBody int64
	// admin operations are for admin keys only.
	admin bool
	// public operations carry their own authorisation (signed URLs).
	public bool
	fn     func(*request) (any, int, *Error)
}

// request is what an operation handler works with.
type request struct {
	ctx    context.Context
	r      *http.Request
	w      http.ResponseWriter
	body   []byte
	caller Principal
	id     string
}

func (h *Handler) routes() {
	ctl := int64(maxControlRequestBytes)
	routes := []struct {
		pattern string
		op      op
	}{
		{"POST /2015-03-31/functions", op{"CreateFunction", MaxCreateFunctionBytes, false, false, h.createFunction}},
		{"POST /2015-03-31/functions/", op{"CreateFunction", MaxCreateFunctionBytes, false, false, h.createFunction}},
		{"GET /2015-03-31/functions", op{"ListFunctions", ctl, false, false, h.listFunctions}},
		{"GET /2015-03-31/functions/", op{"ListFunctions", ctl, false, false, h.listFunctions}},
		{"GET /2015-03-31/functions/{name}", op{"GetFunction", ctl, false, false, h.getFunction}},
		{"DELETE /2015-03-31/functions/{name}", op{"DeleteFunction", ctl, false, false, h.deleteFunction}},
		{"GET /2015-03-31/functions/{name}/configuration", op{"GetFunctionConfiguration", ctl, false, false, h.getFunctionConfiguration}},
		{"PUT /2015-03-31/functions/{name}/configuration", op{"UpdateFunctionConfiguration", ctl, false, false, h.updateFunctionConfiguration}},
		{"PUT /2015-03-31/functions/{name}/code", op{"UpdateFunctionCode", MaxCreateFunctionBytes, false, false, h.updateFunctionCode}},
		{"POST /2015-03-31/functions/{name}/invocations", op{"Invoke", MaxSyncPayloadBytes, false, false, h.invoke}},
		{"POST /2015-03-31/functions/{name}/versions", op{"PublishVersion", ctl, false, false, h.publishVersion}},
		{"GET /2015-03-31/functions/{name}/versions", op{"ListVersionsByFunction", ctl, false, false, h.listVersions}},
		{"POST /2015-03-31/functions/{name}/aliases", op{"CreateAlias", ctl, false, false, h.createAlias}},
		{"GET /2015-03-31/functions/{name}/aliases", op{"ListAliases", ctl, false, false, h.listAliases}},
		{"GET /2015-03-31/functions/{name}/aliases/{alias}", op{"GetAlias", ctl, false, false, h.getAlias}},
		{"PUT /2015-03-31/functions/{name}/aliases/{alias}", op{"UpdateAlias", ctl, false, false, h.updateAlias}},
		{"DELETE /2015-03-31/functions/{name}/aliases/{alias}", op{"DeleteAlias", ctl, false, false, h.deleteAlias}},
		{"PUT /2017-10-31/functions/{name}/concurrency", op{"PutFunctionConcurrency", ctl, false, false, h.putFunctionConcurrency}},
		{"DELETE /2017-10-31/functions/{name}/concurrency", op{"DeleteFunctionConcurrency", ctl, false, false, h.deleteFunctionConcurrency}},
		{"GET /2019-09-30/functions/{name}/concurrency", op{"GetFunctionConcurrency", ctl, false, false, h.getFunctionConcurrency}},
		{"PUT /2019-09-30/functions/{name}/provisioned-concurrency", op{"PutProvisionedConcurrencyConfig", ctl, false, false, h.putProvisionedConcurrency}},
		{"GET /2019-09-30/functions/{name}/provisioned-concurrency", op{"GetProvisionedConcurrencyConfig", ctl, false, false, h.getProvisionedConcurrency}},
		{"DELETE /2019-09-30/functions/{name}/provisioned-concurrency", op{"DeleteProvisionedConcurrencyConfig", ctl, false, false, h.deleteProvisionedConcurrency}},
		{"GET /2016-08-19/account-settings", op{"GetAccountSettings", ctl, false, false, h.getAccountSettings}},
		{"GET /2016-08-19/account-settings/", op{"GetAccountSettings", ctl, false, false, h.getAccountSettings}},
		{"GET /2017-03-31/tags/{arn}", op{"ListTags", ctl, false, false, h.listTags}},
		{"POST /2017-03-31/tags/{arn}", op{"TagResource", ctl, false, false, h.tagResource}},
		{"DELETE /2017-03-31/tags/{arn}", op{"UntagResource", ctl, false, false, h.untagResource}},
		{"PUT /2019-09-25/functions/{name}/event-invoke-config", op{"PutFunctionEventInvokeConfig", ctl, false, false, h.putEventInvokeConfig}},
		{"POST /2019-09-25/functions/{name}/event-invoke-config", op{"UpdateFunctionEventInvokeConfig", ctl, false, false, h.putEventInvokeConfig}},
		{"GET /2019-09-25/functions/{name}/event-invoke-config", op{"GetFunctionEventInvokeConfig", ctl, false, false, h.getEventInvokeConfig}},
		{"DELETE /2019-09-25/functions/{name}/event-invoke-config", op{"DeleteFunctionEventInvokeConfig", ctl, false, false, h.deleteEventInvokeConfig}},
		{"GET /2019-09-25/functions/{name}/event-invoke-config/list", op{"ListFunctionEventInvokeConfigs", ctl, false, false, h.listEventInvokeConfigs}},
		{"GET /stoke/v1/functions/{name}/dead-letters", op{"ListDeadLetters", ctl, false, false, h.listDeadLetters}},
		{"GET /stoke/v1/functions/{name}/dead-letters/{id}", op{"GetDeadLetter", ctl, false, false, h.getDeadLetter}},
		{"POST /stoke/v1/functions/{name}/dead-letters/redrive", op{"RedriveDeadLetters", ctl, false, false, h.redriveDeadLetters}},
		{"POST /stoke/v1/functions/{name}/dead-letters/purge", op{"PurgeDeadLetters", ctl, false, false, h.purgeDeadLetters}},
		{"GET /stoke/v1/code/{blob}", op{"DownloadCode", ctl, false, true, h.downloadCode}},
		{"GET /stoke/v1/accounts", op{"ListAccounts", ctl, true, false, h.listAccounts}},
		{"POST /stoke/v1/accounts", op{"CreateAccount", ctl, true, false, h.createAccount}},
		{"GET /stoke/v1/keys", op{"ListKeys", ctl, true, false, h.listKeys}},
		{"POST /stoke/v1/keys", op{"CreateKey", ctl, true, false, h.createKey}},
		{"DELETE /stoke/v1/keys/{id}", op{"RevokeKey", ctl, true, false, h.revokeKey}},
	}
	for _, rt := range routes {
		h.mux.Handle(rt.pattern, h.wrap(rt.op))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, "UnknownOperationException",
			"Unknown operation %s %s", r.Method, truncate(r.URL.Path, 200)))
	})
}

// Handle registers an extra handler behind the same authentication as the
// API (admin keys only); other layers use it for /stoke/v1/... endpoints.
func (h *Handler) Handle(pattern string, admin bool, maxBody int64, fn func(ctx context.Context, r *http.Request, body []byte, caller Principal) (any, int, error)) {
	h.mux.Handle(pattern, h.wrap(op{name: pattern, maxBody: maxBody, admin: admin, fn: func(req *request) (any, int, *Error) {
		out, status, err := fn(req.ctx, req.r, req.body, req.caller)
		if err != nil {
			return nil, 0, h.toAPIError(err)
		}
		return out, status, nil
	}}))
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// wrap turns an op into an http.Handler: request id, bounded body,
// authentication, panic containment and Lambda-shaped errors.
func (h *Handler) wrap(o op) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &request{ctx: r.Context(), r: r, w: w, id: newRequestID()}
		w.Header().Set("x-amzn-RequestId", req.id)
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("panic in API handler", "op", o.name, "panic", p, "stack", string(debug.Stack()))
				writeError(w, serviceError("An internal error occurred (request %s)", req.id))
			}
		}()
		// Authenticate from the headers before reading a byte of the
		// body: an unsigned or unknown-key request costs no buffer.
		var check PayloadCheck
		if !o.public {
			var apiErr *Error
			if check, apiErr = h.authenticateHeaders(r); apiErr != nil {
				writeError(w, apiErr)
				return
			}
		}
		body, release, apiErr := h.readBody(w, r, o)
		defer release()
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		req.body = body
		if !o.public {
			caller, apiErr := h.authenticateBody(check, body)
			if apiErr != nil {
				writeError(w, apiErr)
				return
			}
			if o.admin && !caller.Admin {
				writeError(w, accessDenied("Access key %s is not an admin key; %s needs one", caller.AccessKeyID, o.name))
				return
			}
			req.caller = caller
		}
		out, status, apiErr := o.fn(req)
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		if out == nil {
			w.WriteHeader(status)
			return
		}
		if raw, ok := out.(rawResponse); ok {
			raw(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	})
}

// rawResponse lets an operation write its own response (Invoke, downloads).
type rawResponse func(w http.ResponseWriter)

// authenticateHeaders is the first step of authentication; with --no-auth
// it has nothing to check.
func (h *Handler) authenticateHeaders(r *http.Request) (PayloadCheck, *Error) {
	if h.deps.Auth == nil {
		return nil, nil
	}
	check, err := h.deps.Auth.AuthenticateHeaders(r)
	if err != nil {
		return nil, asAuthError(err)
	}
	return check, nil
}

// authenticateBody finishes what authenticateHeaders began.
func (h *Handler) authenticateBody(check PayloadCheck, body []byte) (Principal, *Error) {
	switch {
	case h.deps.Auth == nil:
		// --no-auth: every caller acts as the first admin key's account.
		return h.anonymousAdmin()
	case check == nil:
		// An Authenticator that accepted the headers without a check
		// to finish with: refuse rather than let anyone in.
		return Principal{}, serviceError("authentication did not complete")
	}
	p, err := check.AuthenticateBody(body)
	if err != nil {
		return Principal{}, asAuthError(err)
	}
	return p, nil
}

func asAuthError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return accessDenied("%v", err)
}

func (h *Handler) anonymousAdmin() (Principal, *Error) {
	for _, k := range h.deps.Meta.View().AccessKeys("") {
		if k.Admin {
			return Principal{AccountID: k.AccountId, AccessKeyID: k.Id, Admin: true}, nil
		}
	}
	return Principal{}, serviceError("the cluster has not created its admin account yet")
}

// decode parses a JSON body into v (an empty body is an empty object).
func decode(body []byte, v any) *Error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return invalidRequestContent("Could not parse request body into json: %v", truncate(err.Error(), 300))
	}
	return nil
}

// toAPIError maps any error from the layers below onto a Lambda exception.
func (h *Handler) toAPIError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	if e := fromFSM(err); e != nil {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return serviceError("The request did not complete in time: %v", err)
	}
	h.log.Warn("request failed", "err", err)
	return serviceError("%v", err)
}

// consistentView is the control-plane read: it reflects every write
// acknowledged before the request.
func (h *Handler) consistentView(req *request) (*fsm.View, *Error) {
	v, err := h.deps.Meta.ConsistentView(req.ctx)
	if err != nil {
		return nil, h.toAPIError(err)
	}
	return v, nil
}

// functionView is the control-plane read of an existing function: a
// consistent view and ref's function in it, or ResourceNotFound.
func (h *Handler) functionView(req *request, ref functionRef) (*fsm.View, *fsmpb.Function, *Error) {
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	fn := v.Function(ref.AccountID, ref.Name)
	if fn == nil {
		return nil, nil, functionNotFound(h, ref.AccountID, ref.Name, "")
	}
	return v, fn, nil
}

// pageOf reads a list request's MaxItems (1..10000, default 50) and its
// opaque Marker, decoded.
func pageOf(req *request) (limit int, marker string, apiErr *Error) {
	if limit, apiErr = pageSize(req, maxListPageSize); apiErr != nil {
		return 0, "", apiErr
	}
	if marker, apiErr = decodeMarker(req); apiErr != nil {
		return 0, "", apiErr
	}
	return limit, marker, nil
}

func (h *Handler) apply(req *request, cmd fsm.Command) (*fsmpb.ApplyResult, *Error) {
	res, err := h.deps.Meta.Apply(req.ctx, cmd)
	if err != nil {
		return nil, h.toAPIError(err)
	}
	return res, nil
}

func (h *Handler) header(req *request) *fsmpb.Header {
	return &fsmpb.Header{AccountId: req.caller.AccountID, RequestId: req.id}
}

// resolveName parses the {name} path value and checks it belongs to the
// caller's account. It returns the name and the qualifier it carried.
func (h *Handler) resolveName(req *request, raw string) (functionRef, *Error) {
	ref, apiErr := h.parseFunctionRef(raw)
	if apiErr != nil {
		return ref, apiErr
	}
	if ref.AccountID != "" && ref.AccountID != req.caller.AccountID {
		return ref, accessDenied("User: %s is not authorized to perform this operation on resource: %s because no resource-based policy allows it",
			h.callerARN(req), h.functionARN(ref.AccountID, ref.Name))
	}
	ref.AccountID = req.caller.AccountID
	return ref, nil
}

func (h *Handler) callerARN(req *request) string {
	return fmt.Sprintf("arn:aws:iam::%s:user/%s", req.caller.AccountID, req.caller.AccessKeyID)
}

// qualifiedTarget resolves the {name} path value (see resolveName) and the
// qualifier it or ?Qualifier= gives, refusing two different ones.
func (h *Handler) qualifiedTarget(req *request) (functionRef, string, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return ref, "", apiErr
	}
	q, apiErr := qualifierOf(req, ref)
	return ref, q, apiErr
}

func qualifierOf(req *request, ref functionRef) (string, *Error) {
	q := req.r.URL.Query().Get("Qualifier")
	if q != "" && !qualifierRE.MatchString(q) {
		return "", constraint(q, "qualifier", `Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)`)
	}
	switch {
	case q == "":
		return ref.Qualifier, nil
	case ref.Qualifier == "" || ref.Qualifier == q:
		return q, nil
	}
	return "", invalidParameter("The derived qualifier from the function name does not match the specified qualifier.")
}

func functionNotFound(h *Handler, account, name, qualifier string) *Error {
	return notFound("Function not found: %s", h.qualifiedARN(account, name, qualifier))
}

// RequireAdmin puts the API's authentication and the admin-key check in
// front of h, with errors in Lambda's shape. Bodies are bounded to 1 MB.
func (h *Handler) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amzn-RequestId", newRequestID())
		check, apiErr := h.authenticateHeaders(r)
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		body, release, apiErr := h.readBody(w, r, op{name: "admin", maxBody: maxControlRequestBytes})
		defer release()
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		caller, apiErr := h.authenticateBody(check, body)
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		if !caller.Admin {
			writeError(w, accessDenied("Access key %s is not an admin key", caller.AccessKeyID))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}
