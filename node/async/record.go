package async

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// destinationRecord is Lambda's invocation record, the event a
// destination (or, in Stoke, a dead-letter target) function receives.
type destinationRecord struct {
	Version         string           `json:"version"`
	Timestamp       string           `json:"timestamp"`
	RequestContext  requestContext   `json:"requestContext"`
	RequestPayload  json.RawMessage  `json:"requestPayload"`
	ResponseContext *responseContext `json:"responseContext,omitempty"`
	ResponsePayload json.RawMessage  `json:"responsePayload"`
}

type requestContext struct {
	RequestID              string `json:"requestId"`
	FunctionARN            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

type responseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// maxRecordBytes bounds a record: the largest event plus room for the
// context and an error response. A larger record loses its response
// payload first, then its request payload (both become null).
const maxRecordBytes = lambdaapi.MaxAsyncPayloadBytes + 64<<10

var jsonNull = json.RawMessage("null")

// asJSON returns b when it is JSON, or b as a JSON string.
func asJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return jsonNull
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// record builds the invocation record of a decided event.
func (q *Queue) record(t *task, ev *fsmpb.AsyncEvent, f *final, payload []byte) ([]byte, error) {
	version := ev.Version
	if version == "" {
		version = fsm.VersionLatest
	}
	rec := destinationRecord{
		Version:   "1.0",
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: requestContext{
			RequestID:              ev.Id,
			FunctionARN:            lambdaapi.FunctionARN(q.cfg.Region, ev.AccountId, ev.FunctionName) + ":" + version,
			Condition:              f.condition,
			ApproximateInvokeCount: int(t.invokeCount),
		},
		RequestPayload:  asJSON(payload),
		ResponsePayload: jsonNull,
	}
	if r := f.res; r != nil {
		rec.ResponseContext = &responseContext{StatusCode: r.statusCode, ExecutedVersion: r.version, FunctionError: r.functionError}
		if r.outcome == OutcomeSuccess || r.outcome == OutcomeFunctionError {
			rec.ResponsePayload = asJSON(r.payload)
		}
	}
	out, err := json.Marshal(rec)
	if err == nil && len(out) > maxRecordBytes {
		rec.ResponsePayload = jsonNull
		out, err = json.Marshal(rec)
	}
	if err == nil && len(out) > maxRecordBytes {
		rec.RequestPayload = jsonNull
		out, err = json.Marshal(rec)
	}
	return out, err
}

var errTargetMissing = errors.New("async: target function not found")

// sendRecord queues the event's record for a target function (an
// asynchronous invocation of its own, through Enqueue). permanent is true
// when retrying cannot help (the target does not exist).
func (q *Queue) sendRecord(ctx context.Context, t *task, ev *fsmpb.AsyncEvent, target *lambdaapi.Target, f *final) (permanent bool, err error) {
	v := q.deps.Replica.View()
	req, err := resolveTarget(v, q.cfg.Region, target)
	if err != nil {
		return true, err
	}
	p, err := q.payload(ctx, ev)
	if err != nil {
		return false, err
	}
	req.Payload, err = q.record(t, ev, f, p.Payload)
	if err != nil {
		return true, err
	}
	return false, q.Enqueue(ctx, req)
}

// resolveTarget turns a target function into an invocation of the version
// its qualifier names now (an alias's weights are applied).
func resolveTarget(v *fsm.View, region string, target *lambdaapi.Target) (*lambdaapi.InvokeRequest, error) {
	fn := v.Function(target.AccountID, target.FunctionName)
	if fn == nil {
		return nil, fmt.Errorf("%w: %s", errTargetMissing, target.ARN)
	}
	version := target.Qualifier
	if al := v.Alias(target.AccountID, target.FunctionName, version); al != nil {
		version = al.FunctionVersion
		roll, acc := rand.Float64(), 0.0
		for ver, w := range al.AdditionalVersionWeights {
			if acc += w; roll < acc {
				version = ver
				break
			}
		}
	}
	req, err := requestFor(v, target.AccountID, target.FunctionName, version)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (version %s)", errTargetMissing, target.ARN, version)
	}
	req.RequestID = newID()
	req.InvokedARN = lambdaapi.FunctionARN(region, target.AccountID, target.FunctionName)
	if target.Qualifier != "" {
		req.InvokedARN += ":" + target.Qualifier
	}
	return req, nil
}

// newID returns a random UUID-shaped id (request ids of records, request
// ids of commands).
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
