package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

func do(t *testing.T, h *Handler, method, path, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

// TestListFunctionsAllPaginates walks FunctionVersion=ALL one and two
// items at a time: every configuration exactly once, in order, across page
// boundaries that fall inside a function's versions.
func TestListFunctionsAllPaginates(t *testing.T) {
	h := newTestHandler(t)
	for _, name := range []string{"b", "a", "c"} {
		rec, _ := do(t, h, "POST", "/2015-03-31/functions", strings.Replace(createBody(`,"Publish":true`), `"fn"`, `"`+name+`"`, 1))
		if rec.Code != 201 {
			t.Fatalf("create %s: %d %s", name, rec.Code, rec.Body)
		}
	}
	// Give b a second version.
	do(t, h, "PUT", "/2015-03-31/functions/b/configuration", `{"MemorySize":256}`)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions/b/versions", `{}`); rec.Code != 201 {
		t.Fatalf("publish: %d", rec.Code)
	}
	want := "a:$LATEST a:1 b:$LATEST b:1 b:2 c:$LATEST c:1"
	for _, size := range []int{1, 2, 3, 50} {
		var got []string
		marker := ""
		for pages := 0; pages < 20; pages++ {
			path := fmt.Sprintf("/2015-03-31/functions/?FunctionVersion=ALL&MaxItems=%d", size)
			if marker != "" {
				path += "&Marker=" + marker
			}
			rec, out := do(t, h, "GET", path, "")
			if rec.Code != 200 {
				t.Fatalf("list: %d %s", rec.Code, rec.Body)
			}
			for _, f := range out["Functions"].([]any) {
				m := f.(map[string]any)
				got = append(got, m["FunctionName"].(string)+":"+m["Version"].(string))
			}
			next, _ := out["NextMarker"].(string)
			if next == "" {
				break
			}
			marker = next
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("page size %d: %s, want %s", size, strings.Join(got, " "), want)
		}
	}
}

func TestErrorShapeAndUnknownOperation(t *testing.T) {
	h := newTestHandler(t)
	rec, out := do(t, h, "GET", "/2015-03-31/functions/missing", "")
	if rec.Code != 404 || rec.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" ||
		out["Type"] != "User" || !strings.Contains(out["message"].(string), "Function not found") || rec.Header().Get("x-amzn-RequestId") == "" {
		t.Fatalf("missing function: %d %v %v", rec.Code, rec.Header(), out)
	}
	rec, _ = do(t, h, "GET", "/2099-01-01/nothing", "")
	if rec.Code != 404 || rec.Header().Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Fatalf("unknown operation: %d %v", rec.Code, rec.Header())
	}
	rec, _ = do(t, h, "POST", "/2015-03-31/functions", `{"FunctionName": 5}`)
	if rec.Header().Get("X-Amzn-ErrorType") != "InvalidRequestContentException" {
		t.Fatalf("malformed JSON: %d %v", rec.Code, rec.Header())
	}
}

func TestPickVersionHonoursWeights(t *testing.T) {
	al := &fsmpb.Alias{FunctionVersion: "1", AdditionalVersionWeights: map[string]float64{"2": 0.25}}
	for roll, want := range map[float64]string{0: "2", 0.2499: "2", 0.25: "1", 0.9999: "1"} {
		if got := pickVersion(al, roll); got != want {
			t.Errorf("roll %v: version %s, want %s", roll, got, want)
		}
	}
}

func TestLastModifiedFormat(t *testing.T) {
	ts := time.Date(2026, 11, 26, 20, 55, 28, 0, time.UTC).UnixNano()
	if got := lastModified(ts); got != "2026-11-26T20:55:28.000+0000" {
		t.Fatalf("LastModified = %q", got)
	}
}

func TestEnvironmentLimitCountsJSON(t *testing.T) {
	// {"KK":"vvv..."} is 9 bytes of punctuation and key around the value.
	under := map[string]string{"KK": strings.Repeat("v", MaxEnvironmentBytes-9)}
	over := map[string]string{"KK": strings.Repeat("v", MaxEnvironmentBytes-8)}
	if _, err := checkEnvironment(under); err != nil {
		t.Fatalf("4096-byte environment refused: %v", err)
	}
	if _, err := checkEnvironment(over); err == nil || !strings.Contains(err.Message, "4KB") {
		t.Fatalf("4097-byte environment: %v", err)
	}
}

// TestDeleteFunctionVersionZeroKeepsFunction: a qualifier shaped like a
// version number that names no possible version (0, or past int64) is a
// missing version, never the whole function.
func TestDeleteFunctionVersionZeroKeepsFunction(t *testing.T) {
	h := newTestHandler(t)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody(`,"Publish":true`)); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	for _, q := range []string{"0", "00", "99999999999999999999"} {
		rec, _ := do(t, h, "DELETE", "/2015-03-31/functions/fn?Qualifier="+q, "")
		if rec.Code != 404 || rec.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
			t.Errorf("delete Qualifier=%s: %d %s, want 404 ResourceNotFoundException", q, rec.Code, rec.Body)
		}
		if rec, _ := do(t, h, "GET", "/2015-03-31/functions/fn/versions", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"Version":"1"`) {
			t.Fatalf("after delete Qualifier=%s the function or its version 1 is gone: %d %s", q, rec.Code, rec.Body)
		}
	}
}

// TestInvokeMetrics: one invocation counts once under its function's
// label and leaves nothing in flight.
func TestInvokeMetrics(t *testing.T) {
	h := newTestHandler(t)
	reg := prometheus.NewRegistry()
	h.deps.Metrics = NewMetrics(reg)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody("")); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions/fn/invocations", `{"a":1}`); rec.Code != 200 {
		t.Fatalf("invoke: %d %s", rec.Code, rec.Body)
	}
	value := func(m prometheus.Metric) float64 {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetCounter().GetValue() + out.GetGauge().GetValue()
	}
	if n := value(h.deps.Metrics.invocations.WithLabelValues(fakeAccount, "fn", "success")); n != 1 {
		t.Errorf("stoke_invocations_total{fn,success} = %v, want 1", n)
	}
	if n := value(h.deps.Metrics.concurrent.WithLabelValues(fakeAccount, "fn")); n != 0 {
		t.Errorf("stoke_concurrent_executions{fn} = %v after the invocation, want 0", n)
	}
}

// TestControlPlaneReadsAreConsistent: a local replica that has not yet
// applied a create or a delete made through another node does not make
// CreateFunction or UpdateFunctionCode refuse what the cluster allows.
func TestControlPlaneReadsAreConsistent(t *testing.T) {
	h := newTestHandler(t)
	meta := h.deps.Meta.(*fakeMeta)

	catchUp := meta.lag()
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody("")); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "PUT", "/2015-03-31/functions/fn/code", `{"ZipFile":"`+seedZip()+`"}`); rec.Code != 200 {
		t.Errorf("UpdateFunctionCode of a function the local replica has not seen yet: %d %s, want 200", rec.Code, rec.Body)
	}
	catchUp()

	catchUp = meta.lag()
	if rec, _ := do(t, h, "DELETE", "/2015-03-31/functions/fn", ""); rec.Code != 204 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody("")); rec.Code != 201 {
		t.Errorf("re-create of a function the local replica still holds: %d %s, want 201", rec.Code, rec.Body)
	}
	catchUp()
}

// TestUnsupportedCodeSources: S3 and container-image code is refused with
// the reason, nested under Code (CreateFunction) or at the top level
// (UpdateFunctionCode).
func TestUnsupportedCodeSources(t *testing.T) {
	h := newTestHandler(t)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody("")); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/2015-03-31/functions", strings.Replace(createBody(""), `"Code":{`, `"Code":{"S3Bucket":"b",`, 1), "Code in S3"},
		{"POST", "/2015-03-31/functions", strings.Replace(createBody(""), `"Code":{`, `"Code":{"ImageUri":"i",`, 1), "ImageUri"},
		{"PUT", "/2015-03-31/functions/fn/code", `{"S3Bucket":"b","S3Key":"k"}`, "Code in S3"},
		{"PUT", "/2015-03-31/functions/fn/code", `{"ImageUri":"i"}`, "ImageUri"},
	} {
		rec, out := do(t, h, tc.method, tc.path, tc.body)
		if rec.Code != 400 || rec.Header().Get("X-Amzn-ErrorType") != "InvalidParameterValueException" {
			t.Errorf("%s %s %.60s: %d %s, want 400 InvalidParameterValueException", tc.method, tc.path, tc.body, rec.Code, rec.Body)
			continue
		}
		if msg, _ := out["message"].(string); !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s: message %q, want it to mention %q", tc.method, tc.path, msg, tc.want)
		}
	}
}

// TestInvokeBodyBounds: a payload arrives intact whether or not its length
// is declared, and one past 6 MB is RequestTooLargeException either way.
func TestInvokeBodyBounds(t *testing.T) {
	h := newTestHandler(t)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody("")); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	ok := `"` + strings.Repeat("x", 300<<10) + `"`
	big := `"` + strings.Repeat("x", MaxSyncPayloadBytes) + `"`
	for _, tc := range []struct {
		name          string
		body          string
		contentLength int64 // -1: not declared
		want          int
	}{
		{"declared", ok, int64(len(ok)), 200},
		{"undeclared", ok, -1, 200},
		{"too large, declared", big, int64(len(big)), 413},
		{"too large, undeclared", big, -1, 413},
	} {
		r := httptest.NewRequest("POST", "/2015-03-31/functions/fn/invocations", strings.NewReader(tc.body))
		r.ContentLength = tc.contentLength
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %.200s, want %d", tc.name, rec.Code, rec.Body, tc.want)
			continue
		}
		if tc.want == 413 && rec.Header().Get("X-Amzn-ErrorType") != "RequestTooLargeException" {
			t.Errorf("%s: %s, want RequestTooLargeException", tc.name, rec.Header().Get("X-Amzn-ErrorType"))
		}
		if tc.want == 200 && rec.Body.String() != tc.body {
			t.Errorf("%s: the function got %d bytes, want the %d sent", tc.name, rec.Body.Len(), len(tc.body))
		}
	}
}

// failingMeta refuses the failAt-th Apply (1-based) with a conflict.
type failingMeta struct {
	*fakeMeta
	calls, failAt int
}

func (m *failingMeta) Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	m.calls++
	if m.calls == m.failAt {
		return nil, conflict("busy")
	}
	return &fsmpb.ApplyResult{}, nil
}

// TestApplyInBatchesReportsProgress: a batch failing after others were
// applied keeps its exception and says how far the operation got.
func TestApplyInBatchesReportsProgress(t *testing.T) {
	h := newTestHandler(t)
	meta := &failingMeta{fakeMeta: h.deps.Meta.(*fakeMeta), failAt: 2}
	h.deps.Meta = meta
	ids := make([]string, maxDeadLetterBatch+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%d", i)
	}
	req := &request{ctx: context.Background(), id: "req", caller: Principal{AccountID: fakeAccount}}
	var batches []int
	apiErr := h.applyInBatches(req, ids, func(hd *fsmpb.Header, batch []string) fsm.Command {
		batches = append(batches, len(batch))
		return &fsmpb.AsyncPurgeCmd{Header: hd, FunctionName: "fn", Ids: batch}
	})
	if fmt.Sprint(batches) != fmt.Sprintf("[%d 1]", maxDeadLetterBatch) {
		t.Fatalf("batches of %v, want [%d 1]", batches, maxDeadLetterBatch)
	}
	if apiErr == nil || apiErr.Type != "ResourceConflictException" || apiErr.Status != 409 {
		t.Fatalf("error %+v, want the failing batch's ResourceConflictException", apiErr)
	}
	want := fmt.Sprintf("busy (the first %d of the %d events were already done: ev-%d is the first that was not)", maxDeadLetterBatch, len(ids), maxDeadLetterBatch)
	if apiErr.Message != want {
		t.Fatalf("message %q, want %q", apiErr.Message, want)
	}
}

// TestClientContextMustBeUTF8JSON: a client context is base64 of a JSON
// object in valid UTF-8; anything else is the client's error (400), never
// a failure further in (an async event's record cannot hold invalid UTF-8).
func TestClientContextMustBeUTF8JSON(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name, raw string
		ok        bool
	}{
		{"empty", "", true},
		{"object", b64([]byte(`{"custom":{"k":"v"}}`)), true},
		{"not base64", "%%%", false},
		{"not JSON", b64([]byte(`{"custom":`)), false},
		{"invalid UTF-8 in a string", b64([]byte("{\"custom\":{\"k\":\"\xff\xfe\"}}")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e := decodeClientContext(tt.raw)
			if (e == nil) != tt.ok {
				t.Fatalf("decodeClientContext(%q) error = %v, want ok %v", tt.raw, e, tt.ok)
			}
			if e != nil && (e.Status != http.StatusBadRequest || e.Type != "InvalidRequestContentException") {
				t.Fatalf("got %d %s, want 400 InvalidRequestContentException", e.Status, e.Type)
			}
		})
	}
}
