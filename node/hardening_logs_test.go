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

