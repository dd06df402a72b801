package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stokehq/stoke/node"
)

func TestAPIClientBoundsFromFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("http_max_conns_per_addr = 100\nhttp_body_grace = \"30s\"\nmax_buffered_request_bytes = 1000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	level := "info"
	if err := loadConfigFile(path, &cfg, &level); err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP; h.MaxConnsPerAddr != 100 || h.BodyGrace != 30*time.Second || cfg.MaxBufferedRequestBytes != 1_000_000 || h.MaxConns != 10_000 {
		t.Fatalf("settings from the file: %+v, budget %d", h, cfg.MaxBufferedRequestBytes)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	registerHTTPFlags(fs, &cfg)
	if err := fs.Parse([]string{"--http-max-conns=500", "--http-body-min-rate=1024"}); err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP; h.MaxConns != 500 || h.BodyMinRate != 1024 || h.MaxConnsPerAddr != 100 {
		t.Fatalf("settings after flags: %+v", h)
	}
}
