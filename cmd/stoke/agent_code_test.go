package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stokehq/stoke/node"
)

func TestCodeSettingsFromFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("code_replicas = 5\ncode_gc_grace = \"10m\"\ncode_unpacked_budget_bytes = 1000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	level := "info"
	if err := loadConfigFile(path, &cfg, &level); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Code; c.Replicas != 5 || c.GCGrace != 10*time.Minute || c.UnpackedBudgetBytes != 1_000_000 || c.MinReplicas != 2 {
		t.Fatalf("code settings from the file: %+v", c)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	registerCodeFlags(fs, &cfg)
	if err := fs.Parse([]string{"--code-replicas=2", "--code-scrub-interval=1h"}); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Code; c.Replicas != 2 || c.ScrubInterval != time.Hour || c.GCGrace != 10*time.Minute {
		t.Fatalf("code settings after flags: %+v", c)
	}
}

func TestAsyncSettingsFromFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("async_copies = 3\nasync_time_scale = 0.5\nasync_dlq_retention = \"48h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	level := "info"
	if err := loadConfigFile(path, &cfg, &level); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Async; a.Copies != 3 || a.TimeScale != 0.5 || a.DeadLetterRetention != 48*time.Hour {
		t.Fatalf("async settings from the file: %+v", a)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	registerAsyncFlags(fs, &cfg)
	if err := fs.Parse([]string{"--async-copies=2"}); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Async; a.Copies != 2 || a.TimeScale != 0.5 {
		t.Fatalf("async settings after flags: %+v", a)
	}
}

func TestFunctionLogSettingsFromFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("function_logs_retention = \"72h\"\nfunction_logs_bytes_per_function = 1000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	if l := cfg.Worker.Logs; l.Retention != 7*24*time.Hour || l.Window != time.Minute {
		t.Fatalf("default function log settings: %+v", l)
	}
	level := "info"
	if err := loadConfigFile(path, &cfg, &level); err != nil {
		t.Fatal(err)
	}
	if l := cfg.Worker.Logs; l.Retention != 72*time.Hour || l.FunctionBytes != 1_000_000 || l.AccountBytes != 128<<20 {
		t.Fatalf("function log settings from the file: %+v", l)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	registerLogFlags(fs, &cfg)
	if err := fs.Parse([]string{"--function-logs-retention=24h", "--function-logs-min-free-bytes=0"}); err != nil {
		t.Fatal(err)
	}
	if l := cfg.Worker.Logs; l.Retention != 24*time.Hour || l.MinFreeBytes != 0 || l.FunctionBytes != 1_000_000 {
		t.Fatalf("function log settings after flags: %+v", l)
	}
}
