package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// InvokeRequest is one invocation, resolved to the configuration it runs.
type InvokeRequest struct {
	RequestID    string
	AccountID    string
	FunctionName string
	// Version is the executed version: "$LATEST" or a number.
	Version string
	Config  *fsmpb.FunctionConfig
	// Revision identifies the exact configuration (function or version
	// revision id): sandboxes are reused only for identical revisions.
	Revision string
	// ReservedConcurrency is the function's reserved concurrency, if any.
	ReservedConcurrency *int32
	// InvokedARN is the ARN the caller used, qualifier included.
	InvokedARN    string
	Payload       []byte
	ClientContext string // decoded JSON from X-Amz-Client-Context
	Tail          bool
}

// InvokeResult is what a function returned. Function failures are results
// (FunctionError set), not errors.
type InvokeResult struct {
	Payload       []byte
	FunctionError string // "" or "Unhandled"
	LogTail       []byte
	Node          string // node that ran it
	ColdStart     bool
	InitDuration  time.Duration
	Duration      time.Duration
}

// Invoker runs invocations: admission, placement and the sandbox pool.
// Errors are platform failures; *Error values (e.g. TooManyRequests) pass
// to the caller unchanged.
type Invoker interface {
	Invoke(ctx context.Context, req *InvokeRequest) (*InvokeResult, error)
}

// AsyncInvoker queues Event invocations durably. Optional: without one the
// API refuses InvocationType Event with a clear error.
type AsyncInvoker interface {
	Enqueue(ctx context.Context, req *InvokeRequest) error
}

// pickVersion applies an alias's routing weights.
func pickVersion(al *fsmpb.Alias, roll float64) string {
	acc := 0.0
	for v, w := range al.AdditionalVersionWeights {
		acc += w
		if roll < acc {
			return v
		}
	}
	return al.FunctionVersion
}

func (h *Handler) invoke(req *request) (any, int, *Error) {
	ref, q, apiErr := h.qualifiedTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	invType := req.r.Header.Get("X-Amz-Invocation-Type")
	switch invType {
	case "", "RequestResponse", "Event", "DryRun":
	default:
		return nil, 0, constraint(invType, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
	}
	logType := req.r.Header.Get("X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		return nil, 0, constraint(logType, "logType", "Member must satisfy enum value set: [Tail, None]")
	}
	clientContext, apiErr := decodeClientContext(req.r.Header.Get("X-Amz-Client-Context"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	payload := req.body
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		return nil, 0, invalidRequestContent("Could not parse request body into json: Could not parse payload into json: the payload is not valid JSON")
	}
	if invType == "Event" && len(payload) > MaxAsyncPayloadBytes {
		return nil, 0, requestTooLarge("Request must be smaller than %d bytes for the InvokeAsync operation", MaxAsyncPayloadBytes)
	}

	// The invoke path reads the local replica: it never waits on Raft.
	// One view serves the whole resolution, alias weights included.
	v := h.deps.Meta.View()
	rs, apiErr := h.resolve(v, ref, q)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if rs.alias != nil && len(rs.alias.AdditionalVersionWeights) > 0 {
		if picked := pickVersion(rs.alias, rand.Float64()); picked != rs.alias.FunctionVersion {
			ver := versionOf(v, ref, picked)
			if ver == nil {
				return nil, 0, functionNotFound(h, ref.AccountID, ref.Name, picked)
			}
			rs.version = ver
		}
	}
	ir := &InvokeRequest{
		RequestID:     req.id,
		AccountID:     ref.AccountID,
		FunctionName:  ref.Name,
		Version:       VersionLatest,
		Config:        rs.config(),
		Revision:      rs.fn.RevisionId,
		InvokedARN:    h.qualifiedARN(ref.AccountID, ref.Name, q),
		Payload:       payload,
		ClientContext: clientContext,
		Tail:          logType == "Tail",
	}
	if rs.version != nil {
		ir.Version = strconv.FormatInt(rs.version.Version, 10)
		ir.Revision = rs.version.RevisionId
	}
	if rs.fn.HasReservedConcurrency {
		n := rs.fn.ReservedConcurrency
		ir.ReservedConcurrency = &n
	}

	switch invType {
	case "DryRun":
		return nil, http.StatusNoContent, nil
	case "Event":
		if h.deps.Async == nil {
			return nil, 0, invalidRequestContent("Asynchronous invocation (InvocationType Event) is not available on this Stoke cluster yet")
		}
		if err := h.deps.Async.Enqueue(req.ctx, ir); err != nil {
			return nil, 0, h.toAPIError(err)
		}
		return nil, http.StatusAccepted, nil
	}

	end := h.deps.Metrics.begin(ir.AccountID, ir.FunctionName)
	res, err := h.deps.Invoker.Invoke(req.ctx, ir)
	end(res, err)
	if err != nil {
		return nil, 0, h.toAPIError(err)
	}
	return rawResponse(func(w http.ResponseWriter) {
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("X-Amz-Executed-Version", ir.Version)
		if res.FunctionError != "" {
			hd.Set("X-Amz-Function-Error", res.FunctionError)
		}
		if ir.Tail {
			hd.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(res.LogTail))
		}
		if res.Node != "" {
			hd.Set("X-Stoke-Node", res.Node)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.Payload)
	}), http.StatusOK, nil
}

func decodeClientContext(raw string) (string, *Error) {
	if raw == "" {
		return "", nil
	}
	if len(raw) > MaxClientContextBytes {
		return "", invalidParameter("Client context must be at most %d bytes of base64-encoded JSON", MaxClientContextBytes)
	}
	js, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "", invalidRequestContent("Client context must be a valid Base64-encoded JSON object.")
	}
	// json.Unmarshal tolerates invalid UTF-8 inside strings; the context is
	// passed on as text (a header to the function, a string in an async
	// event's record), so it must be valid UTF-8 itself.
	var obj map[string]any
	if !utf8.Valid(js) || json.Unmarshal(js, &obj) != nil {
		return "", invalidRequestContent("Client context must be a valid Base64-encoded JSON object.")
	}
	return string(js), nil
}
