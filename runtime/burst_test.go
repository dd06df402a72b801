package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// gatedHandler's Init (the module import) waits until a file named gate
// appears in its code tree, which the test creates from the host.
const gatedHandler = `
import os, time
while not os.path.exists(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "gate")):
    time.sleep(0.02)

def handler(event, context):
    return {"ok": True}
`

// TestColdStartsPastTheInitSlotsAreThrottled: with every Init slot taken,
// another cold start is refused with ErrColdStartsBusy (a throttle) once
// its queue time is up, and nothing of it is left behind; it never starts
// an Init that the overload would time out and report as the function's
// failure. Once the slot frees, cold starts go through again.
func TestColdStartsPastTheInitSlotsAreThrottled(t *testing.T) {
	gated := codeDir(t, map[string]string{"app.py": gatedHandler})
	p := newTestPool(t, map[string]string{
		"gated": gated,
		"py":    codeDir(t, map[string]string{"app.py": pythonHandler}),
	}, func(c *PoolConfig) {
		c.MaxConcurrentInits = 1
		c.InitSlotWait = 300 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type outcome struct {
		res Result
		err error
	}
	first := make(chan outcome, 1)
	go func() {
		res, err := p.Invoke(ctx, interpretedSpec("gated", "python3.11", "app.handler"), Invocation{Payload: []byte(`{}`)})
		first <- outcome{res, err}
	}()
	waitFor(t, 30*time.Second, func() error {
		if s := p.Stats(); s.Initializing != 1 {
			return errorf("%d sandboxes initialising, want the gated one", s.Initializing)
		}
		return nil
	})

	py := interpretedSpec("py", "python3.11", "app.handler")
	for _, noQueue := range []bool{false, true} {
		res, err := p.Invoke(ctx, py, Invocation{Payload: []byte(`{}`), NoQueue: noQueue})
		if !errors.Is(err, ErrColdStartsBusy) {
			t.Fatalf("NoQueue=%v: cold start with every Init slot busy: %+v, %v; want ErrColdStartsBusy", noQueue, res, err)
		}
	}
	if s := p.Stats(); s.Initializing != 1 || s.MemoryUsedMB != py.MemoryMB || s.ByKey[py.Key] != (KeyStats{}) {
		t.Errorf("after the refusals: %+v; want only the gated sandbox and its memory", s)
	}

	if err := os.WriteFile(filepath.Join(gated, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := <-first
	if got.err != nil || got.res.FunctionError != "" || !got.res.ColdStart {
		t.Fatalf("gated invocation: %+v, %v", got.res, got.err)
	}
	if res := invoke(t, p, py, map[string]string{}); res.FunctionError != "" || !res.ColdStart {
		t.Errorf("cold start once the slot is free: %+v", res)
	}
}

// TestInitSlotsBoundConcurrentInits: of several cold starts at once, no more
// than MaxConcurrentInits are ever initialising together, and every one of
// them runs once the earlier ones finish their Init.
func TestInitSlotsBoundConcurrentInits(t *testing.T) {
	gated := codeDir(t, map[string]string{"app.py": gatedHandler})
	p := newTestPool(t, map[string]string{"gated": gated}, func(c *PoolConfig) {
		c.MaxConcurrentInits = 2
		c.InitSlotWait = 2 * time.Minute
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		fn := interpretedSpec("gated", "python3.11", "app.handler")
		fn.Key = fn.Key + string(rune('a'+i)) // five distinct functions: five cold starts
		go func() {
			res, err := p.Invoke(ctx, fn, Invocation{Payload: []byte(`{}`)})
			if err == nil && (res.FunctionError != "" || !res.ColdStart) {
				err = errorf("%s: %+v", fn.Key, res)
			}
			errs <- err
		}()
	}
	most := 0
	waitFor(t, 30*time.Second, func() error {
		s := p.Stats()
		most = max(most, s.Initializing)
		if s.Initializing != 2 || s.InitQueued != n-2 {
			return errorf("%d initialising and %d waiting for a slot, want 2 and %d", s.Initializing, s.InitQueued, n-2)
		}
		return nil
	})
	if most > 2 {
		t.Errorf("%d were initialising at once, want at most 2", most)
	}
	if err := os.WriteFile(filepath.Join(gated, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
