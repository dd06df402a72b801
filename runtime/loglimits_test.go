package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock for a LogGate.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// testGate returns a gate over dir whose clock the test sets and whose
// file system always has room unless the test says otherwise.
func testGate(t *testing.T, dir string, limits LogLimits) (*LogGate, *fakeClock) {
	t.Helper()
	g, err := NewLogGate(dir, limits)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 30, 0, time.UTC)}
	g.now = clock.now
	g.avail = func(string) (int64, error) { return 1 << 40, nil }
	return g, clock
}

// directStream opens a stream for fn whose lines the test feeds straight to
// functionLine (the pipe stays silent); closing it returns the file's lines.
func directStream(t *testing.T, dir string, fn FunctionSpec, sandboxID string, gate *LogGate) (*logStream, func() []string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	path, name := logStreamPath(dir, fn, sandboxID, time.Now())
	ls, err := openLogStream(path, name, fn, 1<<20, gate, r)
	if err != nil {
		t.Fatal(err)
	}
	return ls, func() []string {
		w.Close()
		ls.close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
			if _, msg, ok := strings.Cut(line, "\t"); ok {
				msgs = append(msgs, msg)
			}
		}
		return msgs
	}
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestLogGateBoundsFunctionAndAccount is issue 13, item 9: output past a
// function's bytes per window, or its account's, is dropped with one
// marker line per stream and window, and a new window admits output again.
func TestLogGateBoundsFunctionAndAccount(t *testing.T) {
	dir := t.TempDir()
	gate, clock := testGate(t, dir, LogLimits{Window: time.Minute, FunctionBytes: 1000, AccountBytes: 1500})
	line := []byte(strings.Repeat("a", 99)) // 100 bytes with its newline
	fnA, fnB := goSpec("a"), goSpec("b")

	a, closeA := directStream(t, dir, fnA, "a1", gate)
	for range 20 {
		a.functionLine(line)
	}
	b, closeB := directStream(t, dir, fnB, "b1", gate)
	for range 20 {
		b.functionLine(line)
	}
	linesA, linesB := closeA(), closeB()
	if got := countPrefix(linesA, "aaa"); got != 10 {
		t.Errorf("function a wrote %d lines of 100 bytes under its limit of 1000 bytes; want 10", got)
	}
	if got := countPrefix(linesA, "[stoke] this function's log output on this node passed its limit of 1000 bytes per 1m0s"); got != 1 || len(linesA) != 11 {
		t.Errorf("function a's stream has %d function-limit markers in %d lines; want 1 in 11:\n%s", got, len(linesA), strings.Join(linesA, "\n"))
	}
	if got := countPrefix(linesB, "aaa"); got != 5 {
		t.Errorf("function b wrote %d lines; the account had 500 of its 1500 bytes left, want 5", got)
	}
	if got := countPrefix(linesB, "[stoke] this account's log output on this node passed its limit of 1500 bytes"); got != 1 || len(linesB) != 6 {
		t.Errorf("function b's stream has %d account-limit markers in %d lines; want 1 in 6:\n%s", got, len(linesB), strings.Join(linesB, "\n"))
	}

	clock.t = clock.t.Add(time.Minute)
	a2, closeA2 := directStream(t, dir, fnA, "a2", gate)
	for range 3 {
		a2.functionLine(line)
	}
	if got := countPrefix(closeA2(), "aaa"); got != 3 {
		t.Errorf("in the next window function a wrote %d of 3 lines", got)
	}
}

// TestLogGateStopsWritingWhenDiskIsLow checks the free-space guard: below
// MinFreeBytes nothing reaches the file, the invocation's tail still has
// its records, and once there is room one marker counts what was dropped.
func TestLogGateStopsWritingWhenDiskIsLow(t *testing.T) {
	dir := t.TempDir()
	gate, clock := testGate(t, dir, LogLimits{Window: time.Minute, MinFreeBytes: 1 << 30})
	free := int64(1 << 20)
	gate.avail = func(string) (int64, error) { return free, nil }
	ls, closeLS := directStream(t, dir, goSpec("f"), "f1", gate)

	ls.platform("START RequestId: r1")
	ls.functionLine([]byte("written while the disk is full"))
	ls.endInvocation("END RequestId: r1")
	if tail := string(ls.tail()); !strings.Contains(tail, "written while the disk is full") {
		t.Errorf("the tail lost its records while the disk was full:\n%s", tail)
	}
	path, _ := logStreamPath(dir, goSpec("f"), "f1", time.Now())
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("log file while the disk is full: %v, %v; want it empty", st, err)
	}

	free = 2 << 30
	clock.t = clock.t.Add(diskCheckEvery)
	ls.platform("START RequestId: r2")
	ls.endInvocation("END RequestId: r2")
	lines := closeLS()
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "[stoke] ") || !strings.Contains(lines[0], "bytes of log records were dropped while the node's log disk had less than 1073741824 bytes free") ||
		lines[1] != "START RequestId: r2" {
		t.Fatalf("log file once the disk has room:\n%s", strings.Join(lines, "\n"))
	}
}

// TestLogSweepDeletesOldStreams is issue 13, item 9: stream files not
// written for longer than Retention are deleted, with the directories they
// leave empty; newer files and the log directory itself stay.
func TestLogSweepDeletesOldStreams(t *testing.T) {
	dir := t.TempDir()
	gate, _ := testGate(t, dir, LogLimits{Window: time.Minute, Retention: 7 * 24 * time.Hour})
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	files := map[string]time.Time{
		"123456789012/old/2026/11/20/[$LATEST]a":   now.Add(-17 * 24 * time.Hour),
		"123456789012/mixed/2026/11/29/[$LATEST]b": now.Add(-8 * 24 * time.Hour),
		"123456789012/mixed/2026/12/06/[$LATEST]c": now.Add(-24 * time.Hour),
		"210987654321/new/2026/12/07/[1]d":         now.Add(-time.Minute),
	}
	for rel, mtime := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("2026-11-20T00:00:00.000Z\tx\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := gate.Sweep(now)
	if err != nil || removed != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 files removed", removed, err)
	}
	for rel, mtime := range files {
		_, err := os.Stat(filepath.Join(dir, rel))
		if old := now.Sub(mtime) > 7*24*time.Hour; old != errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s (written %v ago): stat err %v", rel, now.Sub(mtime), err)
		}
	}
	for _, gone := range []string{"123456789012/old", "123456789012/mixed/2026/11"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("emptied directory %s still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the log directory itself: %v", err)
	}
	// A stream opened after its directory was swept creates it again.
	fn := FunctionSpec{AccountID: "123456789012", FunctionName: "old", Version: "$LATEST"}
	path, name := logStreamPath(dir, fn, "e", now)
	r, w, _ := os.Pipe()
	ls, err := openLogStream(path, name, fn, 1<<20, gate, r)
	if err != nil {
		t.Fatalf("opening a stream in a swept directory: %v", err)
	}
	w.Close()
	ls.close()
}

// TestLogFileFailureDoesNotFailInvocation: a log directory that cannot be
// written (here a file where the account's directory belongs; a full disk
// is the same) must not fail the invocation: the function runs and its
// tail still comes back.
func TestLogFileFailureDoesNotFailInvocation(t *testing.T) {
	var logDir string
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { logDir = c.LogDir })
	fn := goSpec("nolog")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logDir, fn.AccountID), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := invoke(t, p, fn, map[string]any{"op": "print", "value": "still here", "n": 1})
	if decode[string](t, res) != "printed" || !strings.Contains(string(res.LogTail), "still here") {
		t.Fatalf("invocation with an unwritable log: %q, tail %q", res.Payload, res.LogTail)
	}
}

// TestLogQuotaBoundsAFloodingFunction is issue 13, item 9 end to end: a
// function that prints far past its quota, over several invocations, has
// its log file bounded, one marker line, and every invocation succeeds.
func TestLogQuotaBoundsAFloodingFunction(t *testing.T) {
	const quota = 256 << 10
	var logDir string
	var gate *LogGate
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) {
		logDir = c.LogDir
		c.LogCapBytes = 8 << 20 // only the gate bounds this test's output
		gate, _ = testGate(t, c.LogDir, LogLimits{Window: time.Minute, FunctionBytes: quota, AccountBytes: 4 * quota})
		c.LogGate = gate
	})
	fn := goSpec("flood")
	fn.Timeout = 60 * time.Second
	var sandbox string
	for i := range 3 {
		res := invoke(t, p, fn, map[string]any{"op": "flood", "n": 2}) // 2 MB each
		if decode[string](t, res) != "flooded" {
			t.Fatalf("invocation %d did not complete", i)
		}
		if i == 0 && !strings.Contains(string(res.LogTail), "log output on this node passed its limit") {
			t.Errorf("the first invocation's tail lacks the marker:\n%s", res.LogTail)
		}
		if sandbox != "" && res.SandboxID != sandbox {
			t.Fatalf("invocation %d ran in another sandbox; this test counts one stream's markers", i)
		}
		sandbox = res.SandboxID
	}
	b, err := os.ReadFile(logFileOf(t, logDir, fn, sandbox))
	if err != nil {
		t.Fatal(err)
	}
	output, markers := 0, 0
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		_, msg, _ := strings.Cut(line, "\t")
		switch {
		case strings.HasPrefix(msg, "[stoke] this function's log output on this node passed its limit"):
			markers++
		case strings.HasPrefix(msg, "xxx"):
			output += len(msg) + 1
		}
	}
	if output > quota || output < quota-1024 {
		t.Errorf("the file holds %d bytes of the function's output; want the quota, %d (within one line)", output, quota)
	}
	if markers != 1 {
		t.Errorf("the file holds %d drop markers; want 1", markers)
	}
}
