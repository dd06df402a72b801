package runtime

import (
	"errors"
	"testing"
)

// TestWarmOnly: a WarmOnly invocation runs on an idle sandbox of its Key
// and otherwise fails at once, without a cold start, even with memory free.
func TestWarmOnly(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)})
	fn := goSpec("warm-only")
	if _, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`), WarmOnly: true}); !errors.Is(err, ErrNoWarmSandbox) {
		t.Fatalf("WarmOnly with no sandbox: %v, want ErrNoWarmSandbox", err)
	}
	if n := p.Stats().ByKey[fn.Key]; n.Idle+n.Busy+n.Initializing != 0 {
		t.Fatalf("WarmOnly created a sandbox: %+v", n)
	}
	first, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`)})
	if err != nil || !first.ColdStart {
		t.Fatalf("cold invocation: %v cold=%v", err, first.ColdStart)
	}
	res, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`), WarmOnly: true})
	if err != nil || res.ColdStart || res.SandboxID != first.SandboxID {
		t.Fatalf("WarmOnly with an idle sandbox: %v cold=%v sandbox %s, want %s", err, res.ColdStart, res.SandboxID, first.SandboxID)
	}
	// The only sandbox busy: WarmOnly refuses instead of queueing.
	done := startSlow(t, p, fn, 2000)
	if _, err := p.Invoke(t.Context(), fn, Invocation{Payload: []byte(`{}`), WarmOnly: true}); !errors.Is(err, ErrNoWarmSandbox) {
		t.Fatalf("WarmOnly with the sandbox busy: %v", err)
	}
	<-done
}
