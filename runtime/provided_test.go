package runtime

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProvidedHelloWorld(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("hello")
	res := invoke(t, p, fn, map[string]string{"op": "echo", "value": "hi"})
	got := decode[map[string]string](t, res)
	if got["value"] != "hi" {
		t.Fatalf("echo = %v", got)
	}
	if !res.ColdStart || res.InitDuration <= 0 {
		t.Errorf("first invocation: ColdStart=%v InitDuration=%v", res.ColdStart, res.InitDuration)
	}
	if res.BilledDurationMs < 1 || res.MaxMemoryUsedMB < 1 {
		t.Errorf("billed %d ms, max memory %d MB", res.BilledDurationMs, res.MaxMemoryUsedMB)
	}
	res2 := invoke(t, p, fn, map[string]string{"op": "echo", "value": "again"})
	if res2.ColdStart || res2.SandboxID != res.SandboxID || res2.InitDuration != 0 {
		t.Errorf("second invocation not warm on the same sandbox: cold=%v %s vs %s", res2.ColdStart, res2.SandboxID, res.SandboxID)
	}
}

func TestProvidedWarmReuseKeepsState(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("state")
	for want := 1; want <= 3; want++ {
		if got := decode[int](t, invoke(t, p, fn, map[string]string{"op": "counter"})); got != want {
			t.Fatalf("counter = %d, want %d", got, want)
		}
	}
	// A different Key never reuses that sandbox.
	other := fn
	other.Key = "state#2"
	if got := decode[int](t, invoke(t, p, other, map[string]string{"op": "counter"})); got != 1 {
		t.Fatalf("new Key reused a sandbox: counter = %d", got)
	}
}

func TestProvidedContextFields(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("ctxfn")
	fn.MemoryMB = 384
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inv := Invocation{
		RequestID:          "11111111-2222-3333-4444-555555555555",
		Payload:            []byte(`{"op":"context"}`),
		InvokedFunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:ctxfn:prod",
		ClientContext:      `{"client":{"installation_id":"inst-1"},"custom":{"k":"v"},"env":{"e":"1"}}`,
		CognitoIdentity:    `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`,
		TraceID:            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
	}
	res, err := p.Invoke(ctx, fn, inv)
	if err != nil {
		t.Fatal(err)
	}
	got := decode[map[string]any](t, res)
	want := map[string]any{
		"requestId": inv.RequestID, "arn": inv.InvokedFunctionARN, "functionName": "ctxfn",
		"version": "$LATEST", "memory": float64(384), "logGroup": "/aws/lambda/ctxfn",
		"deadlineInFuture": true, "traceId": inv.TraceID,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if ls, _ := got["logStream"].(string); !strings.Contains(ls, "[$LATEST]"+res.SandboxID) {
		t.Errorf("logStream = %q", got["logStream"])
	}
	if id, _ := got["identity"].(map[string]any); id["CognitoIdentityID"] != "id-1" || id["CognitoIdentityPoolID"] != "pool-1" {
		t.Errorf("identity = %v", got["identity"])
	}
	if cc, _ := got["clientContext"].(map[string]any); cc == nil || cc["custom"].(map[string]any)["k"] != "v" {
		t.Errorf("clientContext = %v", got["clientContext"])
	}
}

func TestProvidedEnvironment(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("envfn")
	fn.Environment = map[string]string{"MY_VAR": "my value", "AWS_REGION": "overridden?"}
	env := map[string]string{}
	for _, kv := range decode[[]string](t, invoke(t, p, fn, map[string]string{"op": "env"})) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	want := map[string]string{
		"MY_VAR": "my value", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME": "envfn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/envfn",
		"_HANDLER": "bootstrap", "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
		"TZ": ":UTC", "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
		"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["AWS_LAMBDA_LOG_STREAM_NAME"], time.Now().UTC().Format("2006/01/02")+"/[$LATEST]") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	if _, ok := env[initEnvVar]; ok {
		t.Errorf("the init's own variable leaked into the function")
	}
}

func TestProvidedHandlerErrorAndPanic(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("errfn")
	res := invoke(t, p, fn, map[string]string{"op": "error", "value": "x"})
	var e struct{ ErrorMessage, ErrorType string }
	if res.FunctionError != "Unhandled" || json.Unmarshal(res.Payload, &e) != nil || e.ErrorMessage != "boom: x" || e.ErrorType != "errorString" {
		t.Fatalf("error result = %q %s", res.FunctionError, res.Payload)
	}
	// A returned error keeps the sandbox.
	again := invoke(t, p, fn, map[string]string{"op": "echo"})
	if again.SandboxID != res.SandboxID || again.FunctionError != "" {
		t.Fatalf("sandbox not reused after a handled error")
	}
	res = invoke(t, p, fn, map[string]string{"op": "panic"})
	var pe struct {
		ErrorMessage, ErrorType string
		StackTrace              []any
	}
	if res.FunctionError != "Unhandled" || json.Unmarshal(res.Payload, &pe) != nil || pe.ErrorMessage != "kaboom" || len(pe.StackTrace) == 0 {
		t.Fatalf("panic result = %q %s", res.FunctionError, res.Payload)
	}
}

func TestProvidedTimeout(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("slow")
	fn.Timeout = time.Second
	first := invoke(t, p, fn, map[string]string{"op": "echo"})
	res := invoke(t, p, fn, map[string]any{"op": "sleep", "n": 60000})
	want := `{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: ` + "%s" + ` Error: Task timed out after 1.00 seconds"}`
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(res.Payload, &e)
	if res.FunctionError != "Unhandled" || e.ErrorType != "Sandbox.Timedout" || !strings.HasSuffix(e.ErrorMessage, " Error: Task timed out after 1.00 seconds") {
		t.Fatalf("timeout result = %q %s (want shape %s)", res.FunctionError, res.Payload, want)
	}
	if !strings.Contains(string(res.LogTail), "Status: timeout") {
		t.Errorf("log tail lacks the timeout REPORT:\n%s", res.LogTail)
	}
	next := invoke(t, p, fn, map[string]string{"op": "echo"})
	if next.SandboxID == first.SandboxID || !next.ColdStart {
		t.Errorf("timed-out sandbox was reused")
	}
	waitFor(t, 5*time.Second, func() error {
		if s := p.Stats(); s.Idle != 1 || s.Busy != 0 {
			return errorf("stats %+v", s)
		}
		return nil
	})
}

func TestProvidedExitError(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("exiter")
	res := invoke(t, p, fn, map[string]any{"op": "exit", "n": 3})
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(res.Payload, &e)
	if e.ErrorType != "Runtime.ExitError" || !strings.HasSuffix(e.ErrorMessage, "Error: Runtime exited with error: exit status 3") {
		t.Fatalf("exit result = %s", res.Payload)
	}
	if s := p.Stats(); s.Idle+s.Busy != 0 {
		t.Errorf("dead sandbox still counted: %+v", s)
	}
}

func TestProvidedResponseTooLarge(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("big")
	fn.MemoryMB = 512
	ok := invoke(t, p, fn, map[string]any{"op": "big", "n": MaxResponseBytes - 2}) // quotes add 2
	if ok.FunctionError != "" || len(ok.Payload) != MaxResponseBytes {
		t.Fatalf("response of exactly the cap: err %q, %d bytes", ok.FunctionError, len(ok.Payload))
	}
	res := invoke(t, p, fn, map[string]any{"op": "big", "n": MaxResponseBytes})
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(res.Payload, &e)
	if res.FunctionError != "Unhandled" || e.ErrorType != "Function.ResponseSizeTooLarge" {
		t.Fatalf("oversized result = %q %.200s", res.FunctionError, res.Payload)
	}
}

func TestProvidedLogs(t *testing.T) {
	var logDir string
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { logDir = c.LogDir })
	fn := goSpec("logger")
	res := invoke(t, p, fn, map[string]any{"op": "print", "value": "hello from the function", "n": 3})
	tail := string(res.LogTail)
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "START RequestId: ") || !strings.HasSuffix(lines[0], " Version: $LATEST") ||
		lines[1] != "hello from the function" || !strings.HasPrefix(lines[4], "END RequestId: ") {
		t.Fatalf("log tail:\n%s", tail)
	}
	report := strings.Split(lines[5], "\t")
	if len(report) != 6 || !strings.HasPrefix(report[1], "Duration: ") || !strings.HasSuffix(report[1], " ms") ||
		!strings.HasPrefix(report[2], "Billed Duration: ") || report[3] != "Memory Size: 256 MB" ||
		!strings.HasPrefix(report[4], "Max Memory Used: ") || !strings.HasPrefix(report[5], "Init Duration: ") {
		t.Fatalf("REPORT line fields: %q", report)
	}
	warm := invoke(t, p, fn, map[string]any{"op": "print", "value": "warm", "n": 1})
	if strings.Contains(string(warm.LogTail), "Init Duration") || strings.Contains(string(warm.LogTail), "hello from") {
		t.Errorf("warm tail:\n%s", warm.LogTail)
	}
	// The stream file on disk holds both invocations, timestamped.
	path := logFileOf(t, logDir, fn, res.SandboxID)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\tREPORT RequestId: "); n != 2 {
		t.Errorf("%s has %d REPORT lines:\n%s", filepath.Base(path), n, b)
	}
}

func TestProvidedOutputFloodIsCapped(t *testing.T) {
	var logDir string
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { logDir = c.LogDir })
	fn := goSpec("flood")
	fn.Timeout = 60 * time.Second
	res := invoke(t, p, fn, map[string]any{"op": "flood", "n": 100}) // 100 MB
	if decode[string](t, res) != "flooded" {
		t.Fatal("flood did not complete")
	}
	if !strings.Contains(string(res.LogTail), "further output is dropped") || len(res.LogTail) > LogTailBytes {
		t.Errorf("tail (%d bytes) lacks the truncation notice", len(res.LogTail))
	}
	path := logFileOf(t, logDir, fn, res.SandboxID)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(DefaultPoolConfig().LogCapBytes) * 3 / 2; st.Size() > limit {
		t.Errorf("log file is %d bytes, more than %d", st.Size(), limit)
	}
	// The sandbox is fine afterwards.
	if got := decode[map[string]string](t, invoke(t, p, fn, map[string]string{"op": "echo", "value": "ok"})); got["value"] != "ok" {
		t.Errorf("after flood: %v", got)
	}
}

// logFileOf finds the stream file of a sandbox. The date in its path is the
// sandbox's creation day, which is not today's when a test runs across
// midnight UTC, so the day is matched rather than computed.
func logFileOf(t *testing.T, logDir string, fn FunctionSpec, sandboxID string) string {
	t.Helper()
	_, name := logStreamPath(logDir, fn, sandboxID, time.Time{})
	base := filepath.Base(name) // "[version]id"; brackets are glob syntax
	days, err := filepath.Glob(filepath.Join(logDir, fn.AccountID, fn.FunctionName, "*", "*", "*"))
	var matches []string
	for _, day := range days {
		if _, err := os.Stat(filepath.Join(day, base)); err == nil {
			matches = append(matches, filepath.Join(day, base))
		}
	}
	if err != nil || len(matches) != 1 {
		t.Fatalf("log stream of sandbox %s: %v %v", sandboxID, matches, err)
	}
	return matches[0]
}
