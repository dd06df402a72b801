package runtime

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// abusiveBootstrap is a provided-runtime bootstrap (a Python script) that
// misuses the Runtime API in every way the agent must refuse, records the
// status codes it got, and returns them as its response.
const abusiveBootstrap = `#!/usr/bin/python3
import http.client, json, os, threading
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
P = "/2018-06-01/runtime"

def req(method, path, body=None):
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        c.request(method, P + path, body=body)
        r = c.getresponse()
        return r.status, r.getheader("Lambda-Runtime-Aws-Request-Id"), r.read()
    except (ConnectionError, http.client.HTTPException) as e:
        return "conn-" + type(e).__name__, None, b""
    finally:
        c.close()

notes = {}
while True:
    results = []
    def nxt():
        results.append(req("GET", "/invocation/next"))
    ts = [threading.Thread(target=nxt) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    notes["double_next"] = sorted(r[0] for r in results)
    status, rid, body = [r for r in results if r[0] == 200][0]
    event = json.loads(body)
    notes["next_while_busy"] = req("GET", "/invocation/next")[0]
    notes["wrong_id_response"] = req("POST", "/invocation/not-the-id/response", b"{}")[0]
    notes["wrong_id_error"] = req("POST", "/invocation/not-the-id/error", b"{}")[0]
    notes["late_init_error"] = req("POST", "/init/error", b"{}")[0]
    if event.get("op") == "big":
        notes["big"] = req("POST", "/invocation/%s/response" % rid, b"x" * 7000000)[0]
        notes["after_big"] = req("POST", "/invocation/%s/response" % rid, b"{}")[0]
        continue
    reply = json.dumps(notes).encode()
    notes = {"response": req("POST", "/invocation/%s/response" % rid, reply)[0]}
    notes["stale_response"] = req("POST", "/invocation/%s/response" % rid, b"{}")[0]
`

func TestRuntimeAPIAbuseIsRefused(t *testing.T) {
	abuser := codeDir(t, nil)
	if err := os.WriteFile(filepath.Join(abuser, "bootstrap"), []byte(abusiveBootstrap), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newTestPool(t, map[string]string{"go": goFunction(t), "abuser": abuser})
	bad := goSpec("abuser")
	bad.CodeID = "abuser"
	good := goSpec("good")

	// A well-behaved function runs alongside the whole time.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var goodErrs []string
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := p.Invoke(t.Context(), good, Invocation{Payload: []byte(`{"op":"echo","value":"v"}`)})
			if err != nil || res.FunctionError != "" || !strings.Contains(string(res.Payload), `"value":"v"`) {
				mu.Lock()
				goodErrs = append(goodErrs, string(res.Payload)+errString(err))
				mu.Unlock()
			}
		}
	}()

	first := decode[map[string]any](t, invoke(t, p, bad, map[string]string{"op": "echo"}))
	for k, want := range map[string]any{
		"next_while_busy": 403.0, "wrong_id_response": 400.0, "wrong_id_error": 400.0, "late_init_error": 403.0,
	} {
		if first[k] != want {
			t.Errorf("%s: got %v, want %v", k, first[k], want)
		}
	}
	if dn, _ := json.Marshal(first["double_next"]); string(dn) != "[200,403]" {
		t.Errorf("two /next at once: %s, want [200,403]", dn)
	}

	big := invoke(t, p, bad, map[string]string{"op": "big"})
	var e struct{ ErrorType string }
	_ = json.Unmarshal(big.Payload, &e)
	if big.FunctionError != "Unhandled" || e.ErrorType != "Function.ResponseSizeTooLarge" {
		t.Errorf("oversized response: %q %s", big.FunctionError, big.Payload)
	}
	third := decode[map[string]any](t, invoke(t, p, bad, map[string]string{"op": "echo"}))
	if third["response"] != 202.0 || third["stale_response"] != 400.0 {
		t.Errorf("stale responses: %v", third)
	}
	if b := third["big"]; b != 413.0 && !strings.HasPrefix(toString(b), "conn-") {
		t.Errorf("oversized body answered %v, want 413 or a closed connection", b)
	}
	if third["after_big"] != 400.0 {
		t.Errorf("response after the refused one: %v, want 400", third["after_big"])
	}
	close(stop)
	wg.Wait()
	if len(goodErrs) > 0 {
		t.Errorf("the well-behaved function was hurt: %v", goodErrs)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " err=" + err.Error()
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// TestNextAfterInitErrorIsRefused: once a runtime reported /init/error, a
// /next is refused and does not end Init as a success too (the cold start
// would then see both initDone and initFailed closed and pick either).
func TestNextAfterInitErrorIsRefused(t *testing.T) {
	sb := &sandbox{
		initDone: make(chan struct{}), initFailed: make(chan struct{}),
		dispatch: make(chan *invocation), gone: make(chan struct{}),
	}
	h := newRAPIServer().srv.Handler
	do := func(method, path, body string) int {
		// A cancelled context: a /next that were let through returns at
		// once instead of waiting for an event.
		ctx, cancel := context.WithCancel(context.WithValue(t.Context(), sandboxKey{}, sb))
		cancel()
		req := httptest.NewRequestWithContext(ctx, method, rapiPrefix+path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := do("POST", "/init/error", `{"errorType":"Custom.InitFailed","errorMessage":"no"}`); code != http.StatusAccepted {
		t.Fatalf("/init/error during Init: %d, want 202", code)
	}
	if code := do("GET", "/invocation/next", ""); code != http.StatusForbidden {
		t.Errorf("/next after /init/error: %d, want 403", code)
	}
	select {
	case <-sb.initDone:
		t.Error("/next after /init/error ended Init as a success")
	default:
	}
}
