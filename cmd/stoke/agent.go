package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stokehq/stoke/node"
	"github.com/stokehq/stoke/runtime"
)

// runAgent maps flags onto node.Config, starts the agent and runs it until
// SIGINT or SIGTERM.
func runAgent(args []string) error {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.StringVar(&cfg.NodeID, "node-id", "", "node id (default: stored in the data dir, or generated)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for all node state")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "Lambda API listen address")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft transport listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "Raft address peers dial (default: -raft-addr)")
	fs.StringVar(&cfg.Region, "region", cfg.Region, "region name used in ARNs and SigV4")
	fs.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", "", "cluster key file (default: DATA_DIR/keys/cluster.key)")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "form a new single-server cluster if the data dir has no Raft state")
	fs.BoolVar(&cfg.Dev, "dev", false, "development mode: one node on loopback, bootstrapped, fast timeouts")
	fs.BoolVar(&cfg.NoAuth, "no-auth", false, "disable SigV4 authentication (local experiments only)")
	fs.StringVar(&cfg.MetricsTokenFile, "metrics-token-file", "", "file receiving the bearer token /metrics requires (default: DATA_DIR/metrics-token)")
	fs.BoolVar(&cfg.MetricsOpen, "metrics-open", false, "serve /metrics without a token (--dev does too); it names every tenant's functions")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.String("config", "", "TOML config file with the same settings as the flags (flags win)")
	fs.BoolVar(&cfg.Worker.InsecureNoSandbox, "insecure-no-sandbox", false, "run functions as plain processes without isolation (machines without root or cgroups; unsafe)")
	fs.IntVar(&cfg.Worker.MemoryBudgetMB, "memory-budget-mb", 0, "memory all sandboxes on this node may use, in MB (default: derived from the machine)")
	fs.DurationVar(&cfg.Worker.IdleTimeout, "sandbox-idle-timeout", 0, "how long an idle sandbox stays warm (default: the runtime's)")
	fs.Func("cpu-mode", "how sandboxes share CPU: weight (work-conserving, default) or quota (each capped at memory/1769 MB vCPUs)", func(s string) (err error) {
		cfg.Worker.CPUMode, err = runtime.ParseCPUMode(s)
		return err
	})
	fs.IntVar(&cfg.Worker.CPUFloorMB, "cpu-floor-mb", cfg.Worker.CPUFloorMB, "in weight mode, every sandbox weighs at least as much as a function of this many MB (0: none)")
	registerClusterFlags(fs, &cfg)
	registerAsyncFlags(fs, &cfg)
	registerCodeFlags(fs, &cfg)
	registerHTTPFlags(fs, &cfg)
	registerLogFlags(fs, &cfg)
	if path := configFlag(args); path != "" {
		if err := loadConfigFile(path, &cfg, logLevel); err != nil {
			return err
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Console = os.Stderr
	// The admin secret is printed only to a person at a terminal; logs
	// get the credentials file's path instead.
	cfg.SecretConsole = secretConsole(os.Stdout)
	cfg.Cluster.BuildVersion = version
	if cfg.Dev {
		// One node on loopback: gossip and gRPC too, unless told otherwise.
		if !set["gossip-addr"] {
			cfg.Cluster.GossipAddr = "127.0.0.1:7946"
		}
		if !set["grpc-addr"] {
			cfg.Cluster.GRPCAddr = "127.0.0.1:9100"
		}
		cfg.Bootstrap = true
		cfg.RaftHeartbeatTimeout = 200 * time.Millisecond
		cfg.RaftElectionTimeout = 200 * time.Millisecond
	}

	if err := checkAdvertised(cfg); err != nil {
		return err
	}
	agent, err := node.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx)
}
