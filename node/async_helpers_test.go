package node

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/async"
)

// asyncFunctionCode is the Python function the async tests deploy. The
// event's "mode" selects its behaviour:
//
//	flaky: fail the first attempt of ~30% of keys (failsFirstAttempt), using
//	       a marker in the sandbox's /tmp to know a retry from a first try
//	fail:  fail unless the FAIL variable is "0" (a fix deployed before a redrive)
//	sleep: sleep ms milliseconds, then succeed
//	other: succeed, echoing the event
//
// With ALWAYS_FAIL=1 it fails whatever the event (a destination that keeps
// what it receives in its own dead-letter queue, for the test to read).
const asyncFunctionCode = `import hashlib, os, time

def handler(event, context):
    if os.environ.get("ALWAYS_FAIL") == "1":
        raise Exception("kept")
    mode = event.get("mode") if isinstance(event, dict) else None
    if mode == "flaky":
        k = str(event["k"])
        marker = "/tmp/seen-" + k
        if int(hashlib.md5(k.encode()).hexdigest()[:8], 16) % 10 < 3 and not os.path.exists(marker):
            open(marker, "w").close()
            raise Exception("first attempt of " + k)
    elif mode == "fail" and os.environ.get("FAIL", "1") != "0":
        raise Exception("always fails")
    elif mode == "sleep":
        time.sleep(event.get("ms", 0) / 1000.0)
    return {"ok": True, "event": event}
`

// failsFirstAttempt mirrors the function's rule for mode "flaky".
func failsFirstAttempt(k int) bool {
	sum := md5.Sum([]byte(strconv.Itoa(k)))
	return binary.BigEndian.Uint32(sum[:4])%10 < 3
}

// pythonSourceZip packages source as app.py.
func pythonSourceZip(t testing.TB, source string) []byte {
	return zipFiles(t, map[string][]byte{"app.py": []byte(source)}, nil)
}

// attemptLog records every delivery attempt of every agent of a test.
type attemptLog struct {
	mu  sync.Mutex
	all []async.Attempt
}

func (l *attemptLog) record(a async.Attempt) {
	l.mu.Lock()
	l.all = append(l.all, a)
	l.mu.Unlock()
}

func (l *attemptLog) snapshot() []async.Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// describe lists the attempts at one event: node, outcome and age each.
func (l *attemptLog) describe(eventID string) string {
	var out []string
	for _, a := range l.snapshot() {
		if a.EventID == eventID {
			out = append(out, fmt.Sprintf("%s %v at age %v", a.Node, a.Outcome, a.Age.Round(time.Millisecond)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// successes counts successful attempts per event id of a function.
func (l *attemptLog) successes(function string) map[string]int {
	out := map[string]int{}
	for _, a := range l.snapshot() {
		if a.Function == function && a.Outcome == async.OutcomeSuccess {
			out[a.EventID]++
		}
	}
	return out
}

// asyncTestSettings scales the queue's clock by 1/1000 (a 1 min retry
// delay lasts 60 ms, a 60 s maximum age 60 ms) and records attempts.
func asyncTestSettings(cfg *Config, log *attemptLog) {
	cfg.NoAuth = true
	cfg.Async.TimeScale = 0.001
	cfg.Async.RescanInterval = 200 * time.Millisecond
	cfg.Async.SweepInterval = 200 * time.Millisecond
	cfg.Async.SweepGrace = 30 * time.Second
	cfg.Async.OnAttempt = log.record
	cfg.Worker.IdleTimeout = 10 * time.Minute
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("async delivery tests run real sandboxes and need root")
	}
}

// api calls an agent's HTTP API (the agents run with --no-auth) and
// decodes a JSON answer into out. It returns the status and request id.
func api(t testing.TB, a *Agent, method, path string, in, out any, hdr ...string) (int, string) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+a.HTTPAddr()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	if out == nil && resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, resp.Header.Get("x-amzn-RequestId")
}

// mustAPI is api that fails the test on an unexpected status.
func mustAPI(t testing.TB, a *Agent, want int, method, path string, in, out any) {
	t.Helper()
	var raw json.RawMessage
	status, _ := api(t, a, method, path, in, &raw)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// deployAsyncFunction stores the code on every agent (code replication is
// another layer's job) and creates the function through the first one.
func deployAsyncFunction(t testing.TB, name string, env map[string]string, agents ...*Agent) {
	t.Helper()
	code := pythonSourceZip(t, asyncFunctionCode)
	for _, a := range agents {
		if _, err := a.Blobs().Put(context.Background(), code); err != nil {
			t.Fatal(err)
		}
	}
	in := map[string]any{"FunctionName": name, "Runtime": "python3.11", "Handler": "app.handler",
		"Role": "arn:aws:iam::123456789012:role/x", "Code": map[string]any{"ZipFile": code}, "Timeout": 30}
	if env != nil {
		in["Environment"] = map[string]any{"Variables": env}
	}
	mustAPI(t, agents[0], http.StatusCreated, "POST", "/2015-03-31/functions", in, nil)
}

// invokeEvent sends an Event invocation and returns the status and the
// request id, which is the event's id.
func invokeEvent(t testing.TB, a *Agent, fn string, payload any) (int, string) {
	t.Helper()
	return api(t, a, "POST", "/2015-03-31/functions/"+fn+"/invocations", payload, nil, "X-Amz-Invocation-Type", "Event")
}

type deadLetterOut struct {
	EventID                string
	Condition              string
	ErrorType              string
	ErrorMessage           string
	StatusCode             int
	Attempts               int
	ApproximateInvokeCount int
	AcceptedAt             time.Time
	DeadLetteredAt         time.Time
	Payload                json.RawMessage
}

func deadLetters(t testing.TB, a *Agent, fn string) []deadLetterOut {
	t.Helper()
	var out struct{ DeadLetters []deadLetterOut }
	mustAPI(t, a, http.StatusOK, "GET", "/stoke/v1/functions/"+fn+"/dead-letters", nil, &out)
	return out.DeadLetters
}

func waitDeadLetters(t testing.TB, a *Agent, fn string, n int) []deadLetterOut {
	t.Helper()
	var got []deadLetterOut
	clustertest.WaitFor(t, 60*time.Second, func() error {
		if got = deadLetters(t, a, fn); len(got) != n {
			return fmt.Errorf("%s has %d dead letters, want %d", fn, len(got), n)
		}
		return nil
	})
	return got
}
