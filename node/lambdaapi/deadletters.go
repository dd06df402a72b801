package lambdaapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// The built-in dead-letter queue of a function, a Stoke extension under
// /stoke/v1/functions/{name}/dead-letters (the `stoke dlq` commands):
// list, show (with the payload), redrive (re-enqueue with the attempt count
// reset and the age restarted) and purge. Callers act on their own
// account's functions, as with the Lambda operations.

// EventPayloads is implemented by an AsyncInvoker that can return a queued
// or dead-lettered event's payload from whichever node holds it.
type EventPayloads interface {
	EventPayload(ctx context.Context, id string) (payload []byte, clientContext string, err error)
}

type deadLetter struct {
	EventID                string          `json:"EventId"`
	FunctionArn            string          `json:"FunctionArn"` // as invoked
	ExecutedVersion        string          `json:"ExecutedVersion"`
	Condition              string          `json:"Condition"`
	ErrorType              string          `json:"ErrorType,omitempty"`
	ErrorMessage           string          `json:"ErrorMessage,omitempty"`
	StatusCode             int32           `json:"StatusCode,omitempty"`
	Attempts               int32           `json:"Attempts"`
	ApproximateInvokeCount int32           `json:"ApproximateInvokeCount"`
	AcceptedAt             string          `json:"AcceptedAt"`
	DeadLetteredAt         string          `json:"DeadLetteredAt"`
	PayloadSize            int64           `json:"PayloadSize"`
	Payload                json.RawMessage `json:"Payload,omitempty"`
	ClientContext          string          `json:"ClientContext,omitempty"`
}

type listDeadLettersResponse struct {
	DeadLetters []deadLetter `json:"DeadLetters"`
	NextMarker  *string      `json:"NextMarker,omitempty"`
}

type deadLetterSelection struct {
	EventIDs []string `json:"EventIds"`
	// All selects every dead-lettered event of the function; it must be
	// explicit so that an empty list never purges a queue by accident.
	All bool `json:"All"`
}

type redriveResponse struct {
	Redriven int      `json:"Redriven"`
	EventIDs []string `json:"EventIds"`
}

type purgeResponse struct {
	Purged   int      `json:"Purged"`
	EventIDs []string `json:"EventIds"`
}

func timestamp(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}

func toDeadLetter(ev *fsmpb.AsyncEvent) deadLetter {
	return deadLetter{
		EventID: ev.Id, FunctionArn: ev.InvokedArn, ExecutedVersion: ev.Version, Condition: ev.Condition,
		ErrorType: ev.ErrorType, ErrorMessage: ev.ErrorMessage, StatusCode: ev.StatusCode, Attempts: ev.Attempts,
		ApproximateInvokeCount: ev.InvokeCount, AcceptedAt: timestamp(ev.AcceptedUnixNano),
		DeadLetteredAt: timestamp(ev.DeadUnixNano), PayloadSize: ev.PayloadBytes,
	}
}

// deadLetterFunction resolves {name} (no qualifier: the queue is the
// function's) and checks the function exists.
func (h *Handler) deadLetterFunction(req *request) (functionRef, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return ref, apiErr
	}
	if ref.Qualifier != "" {
		return ref, invalidParameter("A function's dead-letter queue is not qualified; name the function without %q", ref.Qualifier)
	}
	return ref, nil
}

func (h *Handler) listDeadLetters(req *request) (any, int, *Error) {
	ref, apiErr := h.deadLetterFunction(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	limit, apiErr := pageSize(req, maxListPageSize)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	evs := v.DeadLetters(ref.AccountID, ref.Name, req.r.URL.Query().Get("Marker"), limit+1)
	out := listDeadLettersResponse{DeadLetters: []deadLetter{}}
	for i, ev := range evs {
		if i == limit {
			next := evs[limit-1].Id
			out.NextMarker = &next
			break
		}
		out.DeadLetters = append(out.DeadLetters, toDeadLetter(ev))
	}
	return out, http.StatusOK, nil
}

func (h *Handler) getDeadLetter(req *request) (any, int, *Error) {
	ref, apiErr := h.deadLetterFunction(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	id := req.r.PathValue("id")
	ev, apiErr := h.deadLetter(v, ref, id)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := toDeadLetter(ev)
	src, ok := h.deps.Async.(EventPayloads)
	if !ok {
		return nil, 0, serviceError("this node cannot read event payloads")
	}
	payload, clientContext, err := src.EventPayload(req.ctx, id)
	if err != nil {
		return nil, 0, serviceError("The payload of event %s is unavailable right now: %v", id, err)
	}
	out.Payload, out.ClientContext = payload, clientContext
	return out, http.StatusOK, nil
}

// deadLetter returns event id if it sits in ref's dead-letter queue, or
// ResourceNotFound.
func (h *Handler) deadLetter(v *fsm.View, ref functionRef, id string) (*fsmpb.AsyncEvent, *Error) {
	ev := v.AsyncEvent(id)
	if ev == nil || ev.AccountId != ref.AccountID || ev.FunctionName != ref.Name || ev.State != fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD {
		return nil, notFound("Event %s is not in the dead-letter queue of %s", truncate(id, 64), h.functionARN(ref.AccountID, ref.Name))
	}
	return ev, nil
}

// selectDeadLetters reads the request's selection and returns the ids of
// the function's dead-lettered events it names.
func (h *Handler) selectDeadLetters(req *request) (functionRef, []string, *Error) {
	ref, apiErr := h.deadLetterFunction(req)
	if apiErr != nil {
		return ref, nil, apiErr
	}
	var in deadLetterSelection
	if apiErr := decode(req.body, &in); apiErr != nil {
		return ref, nil, apiErr
	}
	if in.All == (len(in.EventIDs) > 0) {
		return ref, nil, invalidParameter("Name the events with EventIds, or set All to true (not both)")
	}
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return ref, nil, apiErr
	}
	ids := []string{}
	if in.All {
		for _, ev := range v.DeadLetters(ref.AccountID, ref.Name, "", 0) {
			ids = append(ids, ev.Id)
		}
		return ref, ids, nil
	}
	for _, id := range in.EventIDs {
		if _, apiErr := h.deadLetter(v, ref, id); apiErr != nil {
			return ref, nil, apiErr
		}
		ids = append(ids, id)
	}
	return ref, ids, nil
}

// maxDeadLetterBatch bounds the events one redrive or purge command names.
const maxDeadLetterBatch = 5000

func (h *Handler) redriveDeadLetters(req *request) (any, int, *Error) {
	ref, ids, apiErr := h.selectDeadLetters(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if apiErr := h.applyInBatches(req, ids, func(hd *fsmpb.Header, batch []string) fsm.Command {
		return &fsmpb.AsyncRedriveCmd{Header: hd, FunctionName: ref.Name, Ids: batch}
	}); apiErr != nil {
		return nil, 0, apiErr
	}
	return redriveResponse{Redriven: len(ids), EventIDs: ids}, http.StatusOK, nil
}

func (h *Handler) purgeDeadLetters(req *request) (any, int, *Error) {
	ref, ids, apiErr := h.selectDeadLetters(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if apiErr := h.applyInBatches(req, ids, func(hd *fsmpb.Header, batch []string) fsm.Command {
		return &fsmpb.AsyncPurgeCmd{Header: hd, FunctionName: ref.Name, Ids: batch}
	}); apiErr != nil {
		return nil, 0, apiErr
	}
	return purgeResponse{Purged: len(ids), EventIDs: ids}, http.StatusOK, nil
}

// applyInBatches applies the command cmd builds for each run of at most
// maxDeadLetterBatch ids; each carries the request id suffixed with its
// offset, so the batches are distinct commands. Batches are not atomic
// together: an error after the first says how many events were already
// acted on, since those are no longer in the queue for a retry to name.
func (h *Handler) applyInBatches(req *request, ids []string, cmd func(hd *fsmpb.Header, batch []string) fsm.Command) *Error {
	for start := 0; start < len(ids); start += maxDeadLetterBatch {
		hd := h.header(req)
		hd.RequestId += "-" + strconv.Itoa(start)
		if _, apiErr := h.apply(req, cmd(hd, ids[start:min(start+maxDeadLetterBatch, len(ids))])); apiErr != nil {
			if start > 0 {
				e := *apiErr
				e.Message += fmt.Sprintf(" (the first %d of the %d events were already done: %s is the first that was not)", start, len(ids), ids[start])
				return &e
			}
			return apiErr
		}
	}
	return nil
}
