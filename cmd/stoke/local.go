package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/stokehq/stoke/runtime"
)

// runLocal implements `stoke local-invoke`: run a function from a folder on
// this machine, without a cluster, and print its result. The event is read
// from --event (a file, or - for stdin) or --payload; --count invokes it
// several times on the same warm sandbox.
func runLocal(args []string) error {
	fs := flag.NewFlagSet("local-invoke", flag.ContinueOnError)
	dir := fs.String("dir", ".", "folder holding the function's code (its root is /var/task)")
	rt := fs.String("runtime", "provided.al2023", "runtime: "+strings.Join(runtime.Runtimes(), ", "))
	handler := fs.String("handler", "bootstrap", "handler, e.g. app.handler (Python) or index.handler (Node.js)")
	name := fs.String("name", "", "function name (default: the folder's name)")
	memory := fs.Int("memory", 512, "memory size in MB (128-10240)")
	timeout := fs.Duration("timeout", 3*time.Second, "invocation timeout")
	payload := fs.String("payload", "{}", "event JSON")
	eventFile := fs.String("event", "", "read the event from this file (- for stdin) instead of --payload")
	count := fs.Int("count", 1, "number of invocations (the sandbox is reused)")
	var env, layers multiFlag
	fs.Var(&env, "env", "environment variable KEY=VALUE (repeatable)")
	fs.Var(&layers, "layer", "folder of a layer, merged at /opt in order (repeatable)")
	stateDir := fs.String("state-dir", filepath.Join(os.TempDir(), "stoke-local"), "scratch directory; logs go to <state-dir>/logs")
	insecure := fs.Bool("insecure-no-sandbox", false, "run the function as a plain process without any isolation")
	verbose := fs.Bool("v", false, "log the runtime's own events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	code, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = filepath.Base(code)
	}
	event := []byte(*payload)
	if *eventFile != "" {
		if *eventFile == "-" {
			event, err = io.ReadAll(os.Stdin)
		} else {
			event, err = os.ReadFile(*eventFile)
		}
		if err != nil {
			return err
		}
	}
	if !json.Valid(event) {
		return errors.New("the event is not valid JSON")
	}

	cfg := runtime.DefaultPoolConfig()
	cfg.StateDir = filepath.Join(*stateDir, "runtime")
	cfg.LogDir = filepath.Join(*stateDir, "logs")
	cfg.ShellPoolSize = 0
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dirs := map[string]string{"code": code}
	fn := runtime.FunctionSpec{
		Key: "local", FunctionName: *name, Version: "$LATEST", AccountID: "000000000000", Region: "local",
		Runtime: *rt, Handler: *handler, MemoryMB: *memory, Timeout: *timeout, CodeID: "code",
		Environment: map[string]string{},
	}
	for i, l := range layers {
		abs, err := filepath.Abs(l)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("layer-%d", i)
		dirs[id] = abs
		fn.LayerIDs = append(fn.LayerIDs, id)
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		fn.Environment[k] = v
	}
	cfg.Code = runtime.DirSource{Dirs: dirs}
	if *insecure {
		cfg.Isolation = runtime.IsolationNone
	}
	pool, err := runtime.NewPool(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	defer pool.Close(context.Background())

	for i := 0; i < *count; i++ {
		res, err := pool.Invoke(ctx, fn, runtime.Invocation{Payload: event})
		if err != nil {
			return err
		}
		os.Stderr.Write(res.LogTail)
		fmt.Println(string(res.Payload))
		if res.FunctionError != "" {
			return fmt.Errorf("function error (%s); log tail (base64, as X-Amz-Log-Result): %s",
				res.FunctionError, base64.StdEncoding.EncodeToString(res.LogTail))
		}
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
