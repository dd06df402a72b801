package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/async"
)

// Single-node scenarios of issue 8 on a real agent with real sandboxes,
// its queue clock scaled by 1/1000.

func startAsyncAgent(t *testing.T, log *attemptLog) *Agent {
	t.Helper()
	requireRoot(t)
	cfg := testConfig(t, t.TempDir())
	asyncTestSettings(&cfg, log)
	return startAgent(t, cfg)
}

// send posts events concurrently and returns the ids of those answered 202.
func send(t *testing.T, a *Agent, fn string, payloads []any, clients int) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	work := make(chan any)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				status, id := invokeEvent(t, a, fn, p)
				if status != http.StatusAccepted {
					t.Errorf("Event invoke answered %d", status)
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	for _, p := range payloads {
		work <- p
	}
	close(work)
	wg.Wait()
	return ids
}

// TestAsyncFlakyFunctionEveryEventCompletes: 2,000 events to a function
// that fails the first attempt of ~30% of them. One sandbox (reserved
// concurrency 1) so the function's /tmp markers tell retries apart.
func TestAsyncFlakyFunctionEveryEventCompletes(t *testing.T) {
	log := &attemptLog{}
	a := startAsyncAgent(t, log)
	deployAsyncFunction(t, "flaky", nil, a)
	mustAPI(t, a, http.StatusOK, "PUT", "/2017-10-31/functions/flaky/concurrency", map[string]int{"ReservedConcurrentExecutions": 1}, nil)

	events := 2000
	if testing.Short() {
		events = 300
	}
	payloads := make([]any, events)
	wantRetries := 0
	for k := range events {
		payloads[k] = map[string]any{"mode": "flaky", "k": k}
		if failsFirstAttempt(k) {
			wantRetries++
		}
	}
	ids := send(t, a, "flaky", payloads, 16)
	if len(ids) != events {
		t.Fatalf("%d of %d events accepted", len(ids), events)
	}
	clustertest.WaitFor(t, 3*time.Minute, func() error {
		if p, d := a.Metadata().View().AsyncEventCounts(); p != 0 || d != 0 {
			return fmt.Errorf("%d pending, %d dead", p, d)
		}
		return nil
	})
	ok := log.successes("flaky")
	retries := 0
	for _, at := range log.snapshot() {
		if at.Outcome == async.OutcomeFunctionError {
			retries++
		}
		if at.Outcome == async.OutcomeThrottled || at.Outcome == async.OutcomeSystemError {
			t.Errorf("attempt of %s was %v: async delivery must wait for the function's concurrency, not hit it", at.EventID, at.Outcome)
		}
	}
	for _, id := range ids {
		if ok[id] != 1 {
			t.Fatalf("event %s succeeded %d times, want once", id, ok[id])
		}
	}
	if retries != wantRetries {
		t.Fatalf("%d function-error attempts (retried), want %d: one per event that failed its first attempt", retries, wantRetries)
	}
	t.Logf("%d events, %d retried, all delivered exactly once", events, retries)
}

// TestAsyncDeadLetterRedriveAndDestination: an always-failing function
// dead-letters its event after 1 + MaximumRetryAttempts attempts with its
// error and attempt count; its on-failure destination receives Lambda's
// record; a redrive after a fix delivers the event.
func TestAsyncDeadLetterRedriveAndDestination(t *testing.T) {
	log := &attemptLog{}
	a := startAsyncAgent(t, log)
	deployAsyncFunction(t, "always-fails", map[string]string{"FAIL": "1"}, a)
	deployAsyncFunction(t, "on-failure", map[string]string{"ALWAYS_FAIL": "1"}, a)
	arn := "arn:aws:lambda:local:" + adminAccount(a) + ":function:"
	mustAPI(t, a, http.StatusOK, "PUT", "/2015-03-31/functions/always-fails/configuration",
		map[string]any{"DeadLetterConfig": map[string]string{"TargetArn": "stoke:dlq"}}, nil)
	// The destination keeps what it receives: it fails, without retries,
	// into its own dead-letter queue, where the test reads the record.
	mustAPI(t, a, http.StatusOK, "PUT", "/2015-03-31/functions/on-failure/configuration",
		map[string]any{"DeadLetterConfig": map[string]string{"TargetArn": "stoke:dlq"}}, nil)
	mustAPI(t, a, http.StatusOK, "PUT", "/2019-09-25/functions/on-failure/event-invoke-config", map[string]any{"MaximumRetryAttempts": 0}, nil)
	var cfgOut struct {
		FunctionArn          string
		MaximumRetryAttempts int
		DestinationConfig    struct{ OnFailure struct{ Destination string } }
	}
	mustAPI(t, a, http.StatusOK, "PUT", "/2019-09-25/functions/always-fails/event-invoke-config",
		map[string]any{"DestinationConfig": map[string]any{"OnFailure": map[string]string{"Destination": arn + "on-failure"}}}, &cfgOut)
	if cfgOut.FunctionArn != arn+"always-fails:$LATEST" || cfgOut.DestinationConfig.OnFailure.Destination != arn+"on-failure" {
		t.Fatalf("event invoke config = %+v", cfgOut)
	}

	status, id := invokeEvent(t, a, "always-fails", map[string]any{"mode": "fail", "k": "x1"})
	if status != http.StatusAccepted {
		t.Fatalf("Event invoke answered %d", status)
	}
	dl := waitDeadLetters(t, a, "always-fails", 1)[0]
	if dl.EventID != id || dl.Attempts != 3 || dl.ApproximateInvokeCount != 3 || dl.Condition != "RetriesExhausted" ||
		dl.ErrorType != "Exception" || dl.ErrorMessage != "always fails" || dl.StatusCode != 200 {
		t.Fatalf("dead letter = %+v", dl)
	}
	var shown deadLetterOut
	mustAPI(t, a, http.StatusOK, "GET", "/stoke/v1/functions/always-fails/dead-letters/"+id, nil, &shown)
	if string(shown.Payload) != `{"k":"x1","mode":"fail"}` {
		t.Fatalf("dead letter payload %s", shown.Payload)
	}

	rec := waitDeadLetters(t, a, "on-failure", 1)[0]
	var got deadLetterOut
	mustAPI(t, a, http.StatusOK, "GET", "/stoke/v1/functions/on-failure/dead-letters/"+rec.EventID, nil, &got)
	var record struct {
		Version        string `json:"version"`
		Timestamp      string `json:"timestamp"`
		RequestContext struct {
			RequestID              string `json:"requestId"`
			FunctionArn            string `json:"functionArn"`
			Condition              string `json:"condition"`
			ApproximateInvokeCount int    `json:"approximateInvokeCount"`
		} `json:"requestContext"`
		RequestPayload  map[string]string `json:"requestPayload"`
		ResponseContext struct {
			StatusCode      int    `json:"statusCode"`
			ExecutedVersion string `json:"executedVersion"`
			FunctionError   string `json:"functionError"`
		} `json:"responseContext"`
		ResponsePayload struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		} `json:"responsePayload"`
	}
	if err := json.Unmarshal(got.Payload, &record); err != nil {
		t.Fatalf("record %s: %v", got.Payload, err)
	}
	rc, resp := record.RequestContext, record.ResponseContext
	if record.Version != "1.0" || rc.RequestID != id || rc.FunctionArn != arn+"always-fails:$LATEST" || rc.Condition != "RetriesExhausted" ||
		rc.ApproximateInvokeCount != 3 || record.RequestPayload["k"] != "x1" || resp.StatusCode != 200 || resp.ExecutedVersion != "$LATEST" ||
		resp.FunctionError != "Unhandled" || record.ResponsePayload.ErrorMessage != "always fails" || record.ResponsePayload.ErrorType != "Exception" {
		t.Fatalf("destination record = %s", got.Payload)
	}

	// Deploy the fix, then redrive: the event runs again and succeeds.
	mustAPI(t, a, http.StatusOK, "PUT", "/2015-03-31/functions/always-fails/configuration",
		map[string]any{"Environment": map[string]any{"Variables": map[string]string{"FAIL": "0"}}}, nil)
	var redriven struct{ Redriven int }
	mustAPI(t, a, http.StatusOK, "POST", "/stoke/v1/functions/always-fails/dead-letters/redrive", map[string]any{"EventIds": []string{id}}, &redriven)
	if redriven.Redriven != 1 {
		t.Fatalf("redriven %d", redriven.Redriven)
	}
	clustertest.WaitFor(t, 60*time.Second, func() error {
		if log.successes("always-fails")[id] != 1 {
			return errors.New("redriven event not delivered yet")
		}
		if len(deadLetters(t, a, "always-fails")) != 0 {
			return errors.New("dead-letter queue not empty yet")
		}
		return nil
	})

	metrics := scrape(t, a)
	_, creds := adminClient(t, a)
	acct := `account="` + creds.AccountID + `",`
	for series, want := range map[string]string{
		`stoke_async_events_accepted_total{` + acct + `function="always-fails"}`:                         "1",
		`stoke_async_retries_total{` + acct + `function="always-fails",reason="function_error"}`:         "2",
		`stoke_async_events_dead_lettered_total{` + acct + `function="always-fails",target="stoke-dlq"}`: "1",
		`stoke_async_events_dead_lettered_total{` + acct + `function="always-fails",target="function"}`:  "1",
		`stoke_async_events_delivered_total{` + acct + `function="always-fails"}`:                        "1",
		`stoke_async_events_accepted_total{` + acct + `function="on-failure"}`:                           "1",
	} {
		if got := metrics[series]; got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
}

// scrape reads an agent's /metrics into series -> value.
func scrape(t *testing.T, a *Agent) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			out[line[:i]] = line[i+1:]
		}
	}
	return out
}

// TestAsyncThrottledEventExpiresAfterItsAge: reserved concurrency 0 throttles
// every attempt; with MaximumEventAgeInSeconds 60 (60 ms scaled) the event
// reaches the dead-letter queue after its age, not before.
func TestAsyncThrottledEventExpiresAfterItsAge(t *testing.T) {
	log := &attemptLog{}
	a := startAsyncAgent(t, log)
	deployAsyncFunction(t, "throttled", nil, a)
	mustAPI(t, a, http.StatusOK, "PUT", "/2017-10-31/functions/throttled/concurrency", map[string]int{"ReservedConcurrentExecutions": 0}, nil)
	mustAPI(t, a, http.StatusOK, "PUT", "/2015-03-31/functions/throttled/configuration",
		map[string]any{"DeadLetterConfig": map[string]string{"TargetArn": "stoke:dlq"}}, nil)
	mustAPI(t, a, http.StatusOK, "PUT", "/2019-09-25/functions/throttled/event-invoke-config", map[string]any{"MaximumEventAgeInSeconds": 60}, nil)
	status, id := invokeEvent(t, a, "throttled", map[string]string{"mode": "echo"})
	if status != http.StatusAccepted {
		t.Fatalf("Event invoke answered %d", status)
	}
	dl := waitDeadLetters(t, a, "throttled", 1)[0]
	age := dl.DeadLetteredAt.Sub(dl.AcceptedAt)
	if dl.EventID != id || dl.Condition != "EventAgeExceeded" || dl.ErrorType != "TooManyRequestsException" || dl.ApproximateInvokeCount != 0 {
		t.Fatalf("dead letter = %+v", dl)
	}
	if age < 60*time.Millisecond {
		t.Fatalf("expired after %v, before its maximum age of 60 s (60 ms scaled)", age)
	}
	throttles := 0
	for _, at := range log.snapshot() {
		if at.EventID == id && at.Outcome == async.OutcomeThrottled {
			throttles++
		}
	}
	if throttles < 2 {
		t.Fatalf("%d throttled tries: the event did not back off and retry", throttles)
	}
	t.Logf("expired after %v and %d throttled tries", age, throttles)
}

// TestAsyncEventInvokeConfigThroughTheSDK drives the configuration API with
// the AWS SDK for Go v2, so the shapes (timestamps, nested destinations,
// errors) are the ones its deserializers expect.
func TestAsyncEventInvokeConfigThroughTheSDK(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NoAuth = true
	a := startAgent(t, cfg)
	createFn := func(name string) {
		if err := createFunction(t.Context(), a, adminAccount(a), name); err != nil {
			t.Fatal(err)
		}
	}
	createFn("fn")
	createFn("dest")
	client := lambda.New(lambda.Options{Region: "local", BaseEndpoint: aws.String("http://" + a.HTTPAddr()),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	ctx := t.Context()
	dest := "arn:aws:lambda:local:" + adminAccount(a) + ":function:dest"
	put, err := client.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("fn"), MaximumRetryAttempts: aws.Int32(1), MaximumEventAgeInSeconds: aws.Int32(3600),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String("stoke:dlq")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if put.LastModified == nil || time.Since(*put.LastModified) > time.Minute || aws.ToInt32(put.MaximumRetryAttempts) != 1 ||
		aws.ToString(put.DestinationConfig.OnFailure.Destination) != "arn:aws:stoke:local:"+adminAccount(a)+":dlq" {
		t.Fatalf("put = %+v", put)
	}
	upd, err := client.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{
		FunctionName:      aws.String("fn"),
		DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{Destination: aws.String(dest)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(upd.MaximumEventAgeInSeconds) != 3600 || aws.ToString(upd.DestinationConfig.OnSuccess.Destination) != dest ||
		upd.DestinationConfig.OnFailure.Destination == nil {
		t.Fatalf("update did not merge: %+v", upd)
	}
	list, err := client.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("fn")})
	if err != nil || len(list.FunctionEventInvokeConfigs) != 1 || aws.ToString(list.FunctionEventInvokeConfigs[0].FunctionArn) !=
		"arn:aws:lambda:local:"+adminAccount(a)+":function:fn:$LATEST" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	_, err = client.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
		FunctionName: aws.String("fn"), MaximumRetryAttempts: aws.Int32(3)})
	var invalid *types.InvalidParameterValueException
	if !errors.As(err, &invalid) {
		t.Fatalf("MaximumRetryAttempts 3: %v", err)
	}
	_, err = client.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("fn"),
		DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String("arn:aws:sqs:local:123456789012:q")}}})
	if !errors.As(err, &invalid) {
		t.Fatalf("SQS destination: %v", err)
	}
	if _, err := client.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("fn")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("fn")})
	var missing *types.ResourceNotFoundException
	if !errors.As(err, &missing) {
		t.Fatalf("get after delete: %v", err)
	}
	_, err = client.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{
		FunctionName: aws.String("fn"), MaximumRetryAttempts: aws.Int32(0)})
	if !errors.As(err, &missing) {
		t.Fatalf("update without a config: %v", err)
	}
	_, err = client.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("fn"),
		DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String("arn:aws:sns:local:123456789012:topic")}})
	if !errors.As(err, &invalid) {
		t.Fatalf("SNS dead-letter target: %v", err)
	}
}
