package runtime

import (
	"testing"
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
	t.Logf("cold: init %v, duration %v, billed %d, max mem %d MB\n%s", res.InitDuration, res.Duration, res.BilledDurationMs, res.MaxMemoryUsedMB, res.LogTail)
	res2 := invoke(t, p, fn, map[string]string{"op": "echo", "value": "again"})
	if res2.ColdStart || res2.SandboxID != res.SandboxID {
		t.Errorf("second invocation not warm on the same sandbox: cold=%v %s vs %s", res2.ColdStart, res2.SandboxID, res.SandboxID)
	}
}
