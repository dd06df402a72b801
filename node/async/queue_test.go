package async

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failsFirst reports whether the event with key k is one of the ~30% whose
// first attempt fails.
func failsFirst(k int) bool {
	h := fnv.New32a()
	fmt.Fprint(h, k)
	return h.Sum32()%10 < 3
}

func TestFunctionErrorsAreRetriedAndEveryEventCompletes(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	var mu sync.Mutex
	seen := map[int]int{}
	h.inv.run = func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		var ev struct{ K int }
		_ = json.Unmarshal(req.Payload, &ev)
		mu.Lock()
		seen[ev.K]++
		n := seen[ev.K]
		mu.Unlock()
		if n == 1 && failsFirst(ev.K) {
			return functionError("first attempt")
		}
		return succeed(ctx, req)
	}
	q := h.node("n1")
	h.node("n2")
	const events = 500
	want := 0
	for k := range events {
		h.enqueue(q, "fn", map[string]int{"K": k})
		if failsFirst(k) {
			want++
		}
	}
	h.waitDrained(30 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	retries := 0
	for k := range events {
		switch {
		case seen[k] == 0:
			t.Fatalf("event %d was never delivered", k)
		case seen[k] > 1:
			retries += seen[k] - 1
		}
	}
	if retries != want {
		t.Fatalf("%d retries, want %d (one per event that failed its first attempt)", retries, want)
	}
	if _, dead := h.counts(); dead != 0 {
		t.Fatalf("%d events dead-lettered", dead)
	}
}

func TestAlwaysFailingEventIsDeadLetteredWithItsErrorThenRedriven(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	h.replica.must(t, &fsmpb.UpdateFunctionConfigCmd{Header: &fsmpb.Header{AccountId: testAccount}, Name: "fn",
		Fields: []string{"dead_letter_target_arn"}, Config: &fsmpb.FunctionConfig{DeadLetterTargetArn: lambdaapi.DeadLetterQueueARN(testRegion, testAccount)}})
	h.inv.run = func(context.Context, *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		return functionError("always")
	}
	q := h.node("n1")
	id := h.enqueue(q, "fn", map[string]string{"hello": "world"})
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if ev := h.replica.View().AsyncEvent(id); ev == nil || ev.State != fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD {
			return fmt.Errorf("event = %v", ev)
		}
		return nil
	})
	ev := h.replica.View().AsyncEvent(id)
	if ev.Attempts != 3 || ev.InvokeCount != 3 || ev.Condition != conditionRetries || ev.ErrorMessage != "always" || ev.ErrorType != "Exception" {
		t.Fatalf("dead letter = %v", ev)
	}
	if n := h.inv.count("fn"); n != 3 {
		t.Fatalf("%d invocations, want 1 + MaximumRetryAttempts = 3", n)
	}
	// Retries were spaced by the (scaled) 1 and 2 minute delays.
	reqs := h.attempts()
	if reqs[1].Age-reqs[0].Age < 60*time.Millisecond || reqs[2].Age-reqs[1].Age < 120*time.Millisecond {
		t.Fatalf("attempt ages %v, %v, %v: retries not spaced by 60 and 120 ms", reqs[0].Age, reqs[1].Age, reqs[2].Age)
	}
	p, _, err := q.EventPayload(t.Context(), id)
	if err != nil || string(p) != `{"hello":"world"}` {
		t.Fatalf("dead letter payload %q, %v", p, err)
	}

	h.inv.run = succeed
	h.replica.must(t, &fsmpb.AsyncRedriveCmd{Header: &fsmpb.Header{AccountId: testAccount}, FunctionName: "fn", Ids: []string{id}})
	h.waitDrained(10 * time.Second)
	if n := h.inv.count("fn"); n != 4 {
		t.Fatalf("%d invocations after the redrive, want 4", n)
	}
	if h.replica.View().AsyncEvent(id) != nil {
		t.Fatal("redriven event not completed")
	}
}

func TestFailureDestinationReceivesLambdasRecord(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	h.createFunction("on-failure")
	h.replica.must(t, &fsmpb.PutEventInvokeConfigCmd{Header: &fsmpb.Header{AccountId: testAccount}, Config: &fsmpb.EventInvokeConfig{
		FunctionName: "fn", HasMaximumRetryAttempts: true, MaximumRetryAttempts: 1,
		Destinations: &fsmpb.DestinationConfig{OnFailure: lambdaapi.FunctionARN(testRegion, testAccount, "on-failure")}}})
	h.inv.run = func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		if req.FunctionName == "fn" {
			return functionError("nope")
		}
		return succeed(ctx, req)
	}
	q := h.node("n1")
	id := h.enqueue(q, "fn", map[string]int{"n": 7})
	h.waitDrained(10 * time.Second)
	recs := h.inv.requests("on-failure")
	if len(recs) != 1 {
		t.Fatalf("destination invoked %d times", len(recs))
	}
	var rec struct {
		Version        string `json:"version"`
		Timestamp      string `json:"timestamp"`
		RequestContext struct {
			RequestID              string `json:"requestId"`
			FunctionARN            string `json:"functionArn"`
			Condition              string `json:"condition"`
			ApproximateInvokeCount int    `json:"approximateInvokeCount"`
		} `json:"requestContext"`
		RequestPayload  map[string]int `json:"requestPayload"`
		ResponseContext struct {
			StatusCode      int    `json:"statusCode"`
			ExecutedVersion string `json:"executedVersion"`
			FunctionError   string `json:"functionError"`
		} `json:"responseContext"`
		ResponsePayload map[string]string `json:"responsePayload"`
	}
	if err := json.Unmarshal(recs[0].Payload, &rec); err != nil {
		t.Fatalf("record %s: %v", recs[0].Payload, err)
	}
	rc, resp := rec.RequestContext, rec.ResponseContext
	if rec.Version != "1.0" || !strings.HasSuffix(rec.Timestamp, "Z") || rc.RequestID != id || rc.Condition != "RetriesExhausted" ||
		rc.ApproximateInvokeCount != 2 || rc.FunctionARN != lambdaapi.FunctionARN(testRegion, testAccount, "fn")+":$LATEST" ||
		rec.RequestPayload["n"] != 7 || resp.StatusCode != 200 || resp.ExecutedVersion != "$LATEST" || resp.FunctionError != "Unhandled" ||
		rec.ResponsePayload["errorMessage"] != "nope" {
		t.Fatalf("record = %s", recs[0].Payload)
	}
}

func TestThrottledEventExpiresAtItsMaximumAgeNotBefore(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	h.useStokeDLQ("fn")
	h.replica.must(t, &fsmpb.PutEventInvokeConfigCmd{Header: &fsmpb.Header{AccountId: testAccount}, Config: &fsmpb.EventInvokeConfig{
		FunctionName: "fn", HasMaximumEventAgeS: true, MaximumEventAgeS: 60}})
	h.inv.run = func(context.Context, *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		return nil, lambdaapi.TooManyRequests(lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit, "reserved concurrency 0", 1)
	}
	q := h.node("n1")
	id := h.enqueue(q, "fn", "x")
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if ev := h.replica.View().AsyncEvent(id); ev == nil || ev.State != fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD {
			return fmt.Errorf("event = %v", ev)
		}
		return nil
	})
	ev := h.replica.View().AsyncEvent(id)
	if age := time.Duration(ev.DeadUnixNano - ev.AcceptedUnixNano); age < 60*time.Millisecond {
		t.Fatalf("dead-lettered after %v, before its maximum age of 60 ms (scaled)", age)
	}
	if ev.Condition != conditionAge || ev.StatusCode != 429 || ev.ErrorType != "TooManyRequestsException" || ev.InvokeCount != 0 {
		t.Fatalf("dead letter = %v", ev)
	}
	if h.inv.count("fn") < 2 {
		t.Fatalf("only %d throttled tries in 60 ms of backoff from 1 ms", h.inv.count("fn"))
	}
}

func TestOwnerDeathMovesDeliveryAndRepairsCopies(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	block := make(chan struct{})
	h.inv.run = func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return succeed(ctx, req)
	}
	n1 := h.node("n1")
	h.node("n2")
	h.node("n3")
	var ids []string
	for i := range 20 {
		ids = append(ids, h.enqueue(n1, "fn", i))
	}
	for _, id := range ids {
		if hs := h.replica.View().AsyncEvent(id).Holders; len(hs) != 2 || hs[0] != "n1" || hs[1] != "n2" {
			t.Fatalf("holders of %s = %v, want [n1 n2] (acceptor, then its successor)", id, hs)
		}
	}
	// n1 dies with its deliveries stuck; n2 takes over.
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if h.inv.count("fn") == 0 {
			return fmt.Errorf("n1 has not started delivering")
		}
		return nil
	})
	h.kill("n1")
	close(block)
	h.waitDrained(20 * time.Second)
	delivered := map[string]bool{}
	for _, a := range h.attempts() {
		if a.Node != "n2" {
			t.Fatalf("attempt by %s: n1 was killed before any of its attempts ended, n2 is its successor", a.Node)
		}
		delivered[a.EventID] = delivered[a.EventID] || a.Outcome == OutcomeSuccess
	}
	for _, id := range ids {
		if !delivered[id] {
			t.Fatalf("event %s not delivered after its owner died", id)
		}
	}
}

func TestRepairRestoresTheSecondCopy(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	h.inv.run = func(context.Context, *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		return functionError("keep failing")
	}
	h.useStokeDLQ("fn")
	n1 := h.node("n1")
	h.node("n2")
	n3 := h.node("n3")
	id := h.enqueue(n1, "fn", 1)
	h.waitDead(1)
	h.kill("n1")
	clustertest.WaitFor(t, 10*time.Second, func() error {
		hs := h.replica.View().AsyncEvent(id).Holders
		if len(hs) != 2 || hs[0] != "n2" || hs[1] != "n3" {
			return fmt.Errorf("holders %v, want [n2 n3]", hs)
		}
		if !n3.store.Has(id) {
			return fmt.Errorf("n3 lacks the payload")
		}
		return nil
	})
	if p, _, err := n3.EventPayload(t.Context(), id); err != nil || string(p) != "1" {
		t.Fatalf("payload on the new holder: %q, %v", p, err)
	}
}

func TestAcceptFailsWhenNoCopyOrCommitIsPossible(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	q := h.node("n1")
	h.node("n2")
	h.replica.mu.Lock()
	h.replica.down = true
	h.replica.mu.Unlock()
	req := &lambdaapi.InvokeRequest{RequestID: newID(), AccountID: testAccount, FunctionName: "fn", Version: "$LATEST", Payload: []byte("{}")}
	err := q.Enqueue(t.Context(), req)
	var ae *lambdaapi.Error
	if err == nil || !asAPIError(err, &ae) || ae.Type != "ServiceException" {
		t.Fatalf("enqueue without a leader: %v", err)
	}
	h.replica.mu.Lock()
	h.replica.down = false
	h.replica.mu.Unlock()
	// A peer that cannot take its copy fails the event too: acknowledging
	// it with one copy would break the single-failure guarantee.
	h.world.mu.Lock()
	delete(h.world.queues, "n2")
	h.world.mu.Unlock()
	if err := q.Enqueue(t.Context(), req); err == nil {
		t.Fatal("enqueue succeeded although the live peer could not store a copy")
	}
	// The orphaned local payload is swept (no record references it).
	clustertest.WaitFor(t, 5*time.Second, func() error {
		if q.store.Has(req.RequestID) {
			return fmt.Errorf("orphan payload still held")
		}
		return nil
	})
}

func asAPIError(err error, target **lambdaapi.Error) bool {
	e, ok := err.(*lambdaapi.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestRepairWithoutASpareNodeKeepsTheDeadHolderBehind(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	h.inv.run = func(context.Context, *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		return functionError("no")
	}
	h.useStokeDLQ("fn")
	n1 := h.node("n1")
	h.node("n2")
	id := h.enqueue(n1, "fn", 1)
	h.waitDead(1)
	h.kill("n1")
	// n2 owns the event now and says so, but keeps n1 listed as a copy
	// that may come back: there is no third node to copy to.
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if hs := h.replica.View().AsyncEvent(id).Holders; len(hs) != 2 || hs[0] != "n2" || hs[1] != "n1" {
			return fmt.Errorf("holders %v, want [n2 n1]", hs)
		}
		return nil
	})
}

func TestEventsOfReapedHoldersAreDroppedNotKeptForever(t *testing.T) {
	h := newHarness(t)
	h.createFunction("fn")
	block := make(chan struct{})
	defer close(block)
	h.inv.run = func(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}
	n1 := h.node("n1")
	h.node("n2")
	id := h.enqueue(n1, "fn", 1)
	h.node("n3") // the survivor whose leader duty drops orphans
	h.kill("n1")
	h.kill("n2")
	// Dead, but still committed: the event waits for a holder to return.
	if h.replica.View().AsyncEvent(id) == nil {
		t.Fatal("event dropped while its holders may still come back")
	}
	h.forget("n1")
	h.forget("n2")
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if h.replica.View().AsyncEvent(id) != nil {
			return fmt.Errorf("orphaned event still queued")
		}
		return nil
	})
}
