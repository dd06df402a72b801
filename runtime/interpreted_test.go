package runtime

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const pythonHandler = `
import json, os, time
count = 0

def handler(event, context):
    global count
    count += 1
    op = event.get("op")
    if op == "error":
        raise ValueError("bad value " + str(event.get("value")))
    if op == "context":
        cc = context.client_context
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "client_context_custom": cc.custom if cc else None,
            "client_installation_id": cc.client.installation_id if cc and cc.client else None,
            "identity_id": context.identity.cognito_identity_id if context.identity else None,
            "identity_pool_id": context.identity.cognito_identity_pool_id if context.identity else None,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 10000,
        }
    if op == "env":
        return dict(os.environ)
    print("python says hi")
    return {"count": count, "echo": event}
`

const nodeHandler = `
let count = 0;
exports.handler = async (event, context) => {
  count++;
  if (event.op === 'error') throw new TypeError('bad value ' + event.value);
  if (event.op === 'context') {
    const r = context.getRemainingTimeInMillis();
    return {
      awsRequestId: context.awsRequestId, functionName: context.functionName,
      functionVersion: context.functionVersion, invokedFunctionArn: context.invokedFunctionArn,
      memoryLimitInMB: context.memoryLimitInMB, logGroupName: context.logGroupName,
      logStreamName: context.logStreamName, clientContext: context.clientContext,
      identity: context.identity, remainingOk: r > 0 && r <= 10000,
      callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    };
  }
  console.log('node says hi');
  return { count, echo: event };
};
exports.promise = (event) => Promise.resolve({ via: 'promise', echo: event });
exports.callback = (event, context, callback) => {
  // The response waits for this timer: the event loop must empty first.
  setTimeout(() => { globalThis.timerRan = true; }, 50);
  callback(null, { via: 'callback', timerRanBefore: !!globalThis.timerRan });
};
exports.callbackNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => {}, 5000);
  callback(null, { via: 'callbackNoWait' });
};
exports.callbackError = (event, context, callback) => callback(new Error('cb failed'));
`

func interpretedSpec(name, runtime, handler string) FunctionSpec {
	fn := goSpec(name)
	fn.Runtime, fn.Handler, fn.CodeID = runtime, handler, name
	return fn
}

func TestInterpretedRuntimes(t *testing.T) {
	code := map[string]string{
		"py":  codeDir(t, map[string]string{"app.py": pythonHandler}),
		"js":  codeDir(t, map[string]string{"index.js": nodeHandler}),
		"mjs": codeDir(t, map[string]string{"lib/m.mjs": "export const handler = async (e) => ({ esm: true, echo: e });"}),
	}
	p := newTestPool(t, code)
	ctxInv := Invocation{
		Payload: []byte(`{"op":"context"}`), RequestID: "req-ctx-1",
		InvokedFunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:x:live",
		ClientContext:      `{"client":{"installation_id":"inst-9"},"custom":{"k":"v"}}`,
		CognitoIdentity:    `{"cognitoIdentityId":"id-9","cognitoIdentityPoolId":"pool-9"}`,
	}

	t.Run("python", func(t *testing.T) {
		fn := interpretedSpec("py", "python3.11", "app.handler")
		for want := 1; want <= 2; want++ {
			res := invoke(t, p, fn, map[string]string{"op": "echo"})
			got := decode[map[string]any](t, res)
			if got["count"] != float64(want) {
				t.Fatalf("count = %v, want %d (module state across warm invokes)", got["count"], want)
			}
			if !strings.Contains(string(res.LogTail), "python says hi") {
				t.Errorf("print output missing from the log tail:\n%s", res.LogTail)
			}
		}
		res := invokeRaw(t, p, fn, ctxInv)
		got := decode[map[string]any](t, res)
		for k, v := range map[string]any{
			"aws_request_id": "req-ctx-1", "function_name": "py", "function_version": "$LATEST",
			"invoked_function_arn": ctxInv.InvokedFunctionARN, "memory_limit_in_mb": "256",
			"log_group_name": "/aws/lambda/py", "client_installation_id": "inst-9",
			"identity_id": "id-9", "identity_pool_id": "pool-9", "remaining_ok": true,
		} {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if !strings.Contains(got["log_stream_name"].(string), "[$LATEST]") {
			t.Errorf("log_stream_name = %v", got["log_stream_name"])
		}
		if cc, _ := got["client_context_custom"].(map[string]any); cc["k"] != "v" {
			t.Errorf("client_context.custom = %v", got["client_context_custom"])
		}
		env := decode[map[string]string](t, invoke(t, p, fn, map[string]string{"op": "env"}))
		if env["AWS_EXECUTION_ENV"] != "AWS_Lambda_python3.11" || env["_HANDLER"] != "app.handler" || env["LAMBDA_TASK_ROOT"] != "/var/task" {
			t.Errorf("python env: %v", env)
		}
		res = invoke(t, p, fn, map[string]any{"op": "error", "value": 7})
		var e struct {
			ErrorMessage, ErrorType string
			StackTrace              []string
		}
		if err := json.Unmarshal(res.Payload, &e); err != nil || res.FunctionError != "Unhandled" ||
			e.ErrorType != "ValueError" || e.ErrorMessage != "bad value 7" || len(e.StackTrace) == 0 {
			t.Errorf("python error: %q %s", res.FunctionError, res.Payload)
		}
	})

	t.Run("node", func(t *testing.T) {
		fn := interpretedSpec("js", "nodejs20.x", "index.handler")
		for want := 1; want <= 2; want++ {
			if got := decode[map[string]any](t, invoke(t, p, fn, map[string]string{"op": "echo"})); got["count"] != float64(want) {
				t.Fatalf("count = %v, want %d", got["count"], want)
			}
		}
		got := decode[map[string]any](t, invokeRaw(t, p, fn, ctxInv))
		for k, v := range map[string]any{
			"awsRequestId": "req-ctx-1", "functionName": "js", "functionVersion": "$LATEST",
			"invokedFunctionArn": ctxInv.InvokedFunctionARN, "memoryLimitInMB": "256",
			"logGroupName": "/aws/lambda/js", "remainingOk": true, "callbackWaitsForEmptyEventLoop": true,
		} {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if id, _ := got["identity"].(map[string]any); id["cognitoIdentityId"] != "id-9" {
			t.Errorf("identity = %v", got["identity"])
		}
		if cc, _ := got["clientContext"].(map[string]any); cc["custom"].(map[string]any)["k"] != "v" {
			t.Errorf("clientContext = %v", got["clientContext"])
		}
		res := invoke(t, p, fn, map[string]any{"op": "error", "value": 7})
		var e struct {
			ErrorMessage, ErrorType string
			StackTrace              []string
		}
		if err := json.Unmarshal(res.Payload, &e); err != nil || e.ErrorType != "TypeError" || e.ErrorMessage != "bad value 7" || len(e.StackTrace) == 0 {
			t.Errorf("node error: %s", res.Payload)
		}
		for handler, want := range map[string]string{"index.promise": "promise", "index.callback": "callback", "index.callbackNoWait": "callbackNoWait"} {
			f := fn
			f.Handler, f.Key = handler, handler
			got := decode[map[string]any](t, invoke(t, p, f, map[string]string{"op": "echo"}))
			if got["via"] != want {
				t.Errorf("%s: %v", handler, got)
			}
			if handler == "index.callback" {
				// The callback ran before the timer, but the response
				// waited for the loop to empty: a second call sees it.
				again := decode[map[string]any](t, invoke(t, p, f, map[string]string{"op": "echo"}))
				if again["timerRanBefore"] != true {
					t.Errorf("callbackWaitsForEmptyEventLoop: the timer had not run before the next invocation")
				}
			}
		}
		f := fn
		f.Handler, f.Key = "index.callbackError", "cbErr"
		if res := invoke(t, p, f, map[string]string{}); !strings.Contains(string(res.Payload), "cb failed") || res.FunctionError == "" {
			t.Errorf("callback error: %s", res.Payload)
		}
		m := interpretedSpec("mjs", "nodejs20.x", "lib/m.handler")
		if got := decode[map[string]any](t, invoke(t, p, m, map[string]string{"x": "y"})); got["esm"] != true {
			t.Errorf("ES module handler: %v", got)
		}
	})
}

func TestInitErrors(t *testing.T) {
	code := map[string]string{
		"pysyntax": codeDir(t, map[string]string{"app.py": "def handler(:\n"}),
		"pyimport": codeDir(t, map[string]string{"app.py": "import no_such_module\n"}),
		"jssyntax": codeDir(t, map[string]string{"index.js": "exports.handler = async ( => 1;\n"}),
		"empty":    codeDir(t, map[string]string{"README": "no bootstrap here"}),
	}
	p := newTestPool(t, code)
	cases := []struct {
		name, runtime, handler, code, wantType, wantMsg string
	}{
		{"python syntax", "python3.11", "app.handler", "pysyntax", "Runtime.UserCodeSyntaxError", "Syntax error in module 'app'"},
		{"python import", "python3.11", "app.handler", "pyimport", "Runtime.ImportModuleError", "Unable to import module 'app'"},
		{"python missing handler", "python3.11", "nope.handler", "pyimport", "Runtime.ImportModuleError", "No module named 'nope'"},
		{"node syntax", "nodejs20.x", "index.handler", "jssyntax", "Runtime.UserCodeSyntaxError", "SyntaxError"},
		{"node missing module", "nodejs20.x", "missing.handler", "jssyntax", "Runtime.ImportModuleError", "Cannot find module"},
		{"provided without bootstrap", "provided.al2023", "x", "empty", "Runtime.InvalidEntrypoint", "no bootstrap found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := interpretedSpec(strings.ReplaceAll(tc.name, " ", "-"), tc.runtime, tc.handler)
			fn.CodeID = tc.code
			res := invoke(t, p, fn, map[string]string{})
			var e struct{ ErrorType, ErrorMessage string }
			_ = json.Unmarshal(res.Payload, &e)
			if res.FunctionError != "Unhandled" || e.ErrorType != tc.wantType || !strings.Contains(e.ErrorMessage, tc.wantMsg) {
				t.Errorf("got %q %s", res.FunctionError, res.Payload)
			}
			if !res.ColdStart || !strings.Contains(string(res.LogTail), "Status: error") {
				t.Errorf("cold=%v tail:\n%s", res.ColdStart, res.LogTail)
			}
			waitFor(t, 5*time.Second, func() error {
				if ks, ok := p.Stats().ByKey[fn.Key]; ok {
					return errorf("sandbox of a failed init still counted: %+v", ks)
				}
				return nil
			})
		})
	}
}

func invokeRaw(t testing.TB, p *Pool, fn FunctionSpec, inv Invocation) Result {
	t.Helper()
	res, err := p.Invoke(t.Context(), fn, inv)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return res
}
