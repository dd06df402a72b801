package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stokehq/stoke/node"
)

// TestFnCLI drives `stoke fn`, `stoke logs`, `stoke account` and `stoke
// key` against a dev agent, through the same Lambda API the AWS CLI uses.
func TestFnCLI(t *testing.T) {
	dir := t.TempDir()
	startDevAgent(t, dir)
	t.Setenv("STOKE_DATA_DIR", dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	code := t.TempDir()
	os.MkdirAll(filepath.Join(code, "lib"), 0o755)
	os.WriteFile(filepath.Join(code, "lib", "helper.py"), []byte("WORD = 'nested'\n"), 0o644)
	os.WriteFile(filepath.Join(code, "app.py"), []byte(
		"import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\nimport helper\n"+
			"def handler(e, c):\n    print('log line from', c.function_name)\n    return {'word': helper.WORD, 'env': os.environ.get('COLOR'), 'in': e}\n"), 0o644)

	fn := func(args ...string) string {
		t.Helper()
		return captureStdout(t, func() error { return runFn(args) })
	}
	var created fnConfig
	if err := json.Unmarshal([]byte(fn("create", "cli-fn", "--dir", code, "--runtime", "python3.11", "--handler", "app.handler",
		"--env", "COLOR=blue", "--memory", "256", "--json")), &created); err != nil {
		t.Fatal(err)
	}
	if created.FunctionName != "cli-fn" || created.MemorySize != 256 || created.Environment["COLOR"] != "blue" {
		t.Fatalf("created %+v", created)
	}
	out := fn("invoke", "cli-fn", `{"x":1}`)
	if !strings.Contains(out, `"word": "nested"`) || !strings.Contains(out, `"env": "blue"`) || !strings.Contains(out, `"in": {"x": 1}`) {
		t.Fatalf("invoke printed %q", out)
	}
	payload := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(payload, []byte(`{"from":"file"}`), 0o644)
	if out := fn("invoke", "cli-fn", "--file", payload); !strings.Contains(out, `"from": "file"`) {
		t.Fatalf("invoke --file printed %q", out)
	}
	fn("update-config", "cli-fn", "--timeout", "10", "--env", "COLOR=red")
	var got fnConfig
	json.Unmarshal([]byte(fn("get", "cli-fn", "--json")), &got)
	if got.Timeout != 10 || got.Environment["COLOR"] != "red" || got.MemorySize != 256 {
		t.Fatalf("after update-config: %+v", got)
	}
	fn("publish", "cli-fn")
	fn("alias", "create", "cli-fn", "live", "--version", "1")
	var aliases []aliasRow
	json.Unmarshal([]byte(fn("alias", "list", "cli-fn", "--json")), &aliases)
	if len(aliases) != 1 || aliases[0].Name != "live" || aliases[0].FunctionVersion != "1" {
		t.Fatalf("aliases %+v", aliases)
	}
	if out := fn("invoke", "cli-fn", "--qualifier", "live"); !strings.Contains(out, `"env": "red"`) {
		t.Fatalf("invoke via alias printed %q", out)
	}
	if out := fn("concurrency", "put", "cli-fn", "5"); !strings.Contains(out, "reserved concurrency 5") {
		t.Fatalf("concurrency put printed %q", out)
	}
	var list []fnConfig
	json.Unmarshal([]byte(fn("list", "--json")), &list)
	if len(list) != 1 || list[0].FunctionName != "cli-fn" {
		t.Fatalf("list %+v", list)
	}

	logs := captureStdout(t, func() error { return runLogs([]string{"cli-fn", "--since", "10m"}) })
	if !strings.Contains(logs, "START RequestId:") || !strings.Contains(logs, "log line from cli-fn") || !strings.Contains(logs, "REPORT RequestId:") {
		t.Fatalf("stoke logs printed:\n%s", logs)
	}

	acct := captureStdout(t, func() error { return runAccount([]string{"create", "team-c", "--json"}) })
	var a struct{ AccountId string }
	if err := json.Unmarshal([]byte(acct), &a); err != nil || len(a.AccountId) != 12 {
		t.Fatalf("account create printed %q", acct)
	}
	key := captureStdout(t, func() error { return runKey([]string{"create", "--account", a.AccountId, "--json"}) })
	var k struct{ AccessKeyId, SecretAccessKey, AccountId string }
	if err := json.Unmarshal([]byte(key), &k); err != nil || k.AccountId != a.AccountId || k.SecretAccessKey == "" {
		t.Fatalf("key create printed %q", key)
	}
	// The tenant's key sees an empty account.
	t.Setenv("AWS_ACCESS_KEY_ID", k.AccessKeyId)
	t.Setenv("AWS_SECRET_ACCESS_KEY", k.SecretAccessKey)
	var tenantList []fnConfig
	json.Unmarshal([]byte(fn("list", "--json")), &tenantList)
	if len(tenantList) != 0 {
		t.Fatalf("tenant sees %d functions", len(tenantList))
	}
	if err := runAccount([]string{"list"}); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("tenant listing accounts: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	captureStdout(t, func() error { return runKey([]string{"revoke", k.AccessKeyId}) })
	t.Setenv("AWS_ACCESS_KEY_ID", k.AccessKeyId)
	t.Setenv("AWS_SECRET_ACCESS_KEY", k.SecretAccessKey)
	if err := runFn([]string{"list"}); err == nil {
		t.Fatal("a revoked key still works")
	}
}

// TestStatusWarnsWithoutSandboxes: a node running functions as plain
// processes says so loudly in `stoke status`; a sandboxed one does not.
func TestStatusWarnsWithoutSandboxes(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		if !insecure && os.Geteuid() != 0 {
			t.Log("not root: only the insecure node can start")
			continue
		}
		dir := t.TempDir()
		a := startDevAgentWith(t, dir, func(c *node.Config) { c.Worker.InsecureNoSandbox = insecure })
		t.Setenv("STOKE_DATA_DIR", dir)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		out := captureStdout(t, func() error { return commands["status"].run(nil) })
		if warned := strings.Contains(out, "!!! INSECURE"); warned != insecure {
			t.Fatalf("insecure=%v: status warns=%v:\n%s", insecure, warned, out)
		}
		if !strings.Contains(out, "Leader:") || !strings.Contains(out, a.NodeID()) {
			t.Fatalf("status:\n%s", out)
		}
	}
}
