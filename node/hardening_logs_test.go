package node

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/cluster/clustertest"
)

// TestAgentBoundsAFunctionsLog is issue 13, item 9 through the agent: a
// function that logs past its per-function quota keeps answering, and the
// node's log holds no more than the quota plus a marker line.
func TestAgentBoundsAFunctionsLog(t *testing.T) {
	const quota = 4096
	cfg := testConfig(t, t.TempDir())
	if os.Geteuid() != 0 {
		t.Log("not root: running sandboxes without isolation (--insecure-no-sandbox)")
		cfg.Worker.InsecureNoSandbox = true
	}
	cfg.Worker.Logs.FunctionBytes = quota
	// One window for the whole test, whenever it runs: no minute boundary
	// can hand the function a fresh quota halfway.
	cfg.Worker.Logs.Window = time.Duration(math.MaxInt64)
	a := startAgent(t, cfg)
	c, _ := adminClient(t, a)
	if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("chatty"), Runtime: types.RuntimePython311,
		Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, "v1")}}); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000) // 1,001 bytes with its newline: four fit the quota
	for i := range 10 {
		out, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("chatty"), Payload: []byte(fmt.Sprintf(`{"op":"print","value":%q}`, line))})
		if err != nil || out.FunctionError != nil {
			t.Fatalf("invocation %d past the log quota: %v %v", i, err, aws.ToString(out.FunctionError))
		}
	}
	output, markers := 0, 0
	err := filepath.WalkDir(a.logDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		for rec := range strings.SplitSeq(string(b), "\n") {
			_, msg, _ := strings.Cut(rec, "\t")
			switch {
			case msg == line:
				output += len(msg) + 1
			case strings.HasPrefix(msg, "[stoke] this function's log output on this node passed its limit of 4096 bytes"):
				markers++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if output != 4*(len(line)+1) || markers < 1 {
		t.Fatalf("the node logged %d bytes of the function's output and %d markers; want %d bytes (the quota's worth of lines) and a marker",
			output, markers, 4*(len(line)+1))
	}
}

// TestAgentSweepsExpiredLogs is issue 13, item 9: the agent deletes
// function log streams older than its retention (here the default, seven
// days) and keeps newer ones.
func TestAgentSweepsExpiredLogs(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	if os.Geteuid() != 0 {
		cfg.Worker.InsecureNoSandbox = true
	}
	logs := filepath.Join(cfg.DataDir, "logs", "123456789012", "fn")
	old := filepath.Join(logs, "2026", "01", "01", "[$LATEST]old")
	fresh := filepath.Join(logs, "2026", "12", "06", "[$LATEST]fresh")
	for p, age := range map[string]time.Duration{old: 8 * 24 * time.Hour, fresh: time.Hour} {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("2026-01-01T00:00:00.000Z\thello\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		mtime := time.Now().Add(-age)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	startAgent(t, cfg)
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("an eight-day-old stream is still there (%v)", err)
		}
		return nil
	})
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("an hour-old stream was swept: %v", err)
	}
}

// TestReadLogFileKeepsTheNewest checks that reading a stream keeps only
// the newest records asked for (a bounded log can still be large) and
// honours since.
func TestReadLogFileKeepsTheNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "[$LATEST]s")
	var b strings.Builder
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 50 {
		fmt.Fprintf(&b, "%s\tline %d\n", start.Add(time.Duration(i)*time.Second).Format(logTimeLayout), i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		since       time.Time
		limit       int
		first, last int
	}{
		{start, 10, 40, 49},
		{start, 100, 0, 49},
		{start.Add(45 * time.Second), 10, 45, 49},
	} {
		var events []LogEvent
		if err := readLogFile(path, "s", "n1", tc.since, tc.limit, &events); err != nil {
			t.Fatal(err)
		}
		if len(events) != tc.last-tc.first+1 || events[0].Message != fmt.Sprintf("line %d", tc.first) || events[len(events)-1].Message != fmt.Sprintf("line %d", tc.last) {
			t.Errorf("since %v limit %d: %d events from %q to %q; want lines %d..%d", tc.since, tc.limit, len(events), events[0].Message, events[len(events)-1].Message, tc.first, tc.last)
		}
	}
}
