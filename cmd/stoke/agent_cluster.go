package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/node"
	"github.com/stokehq/stoke/runtime"
)

// registerClusterFlags adds the cluster flags of `stoke agent`.
func registerClusterFlags(fs *flag.FlagSet, cfg *node.Config) {
	cc := &cfg.Cluster
	fs.BoolVar(&cc.Server, "server", false, "be a Raft voter (3 or 5 per cluster); others are workers (non-voters)")
	fs.IntVar(&cc.BootstrapExpect, "bootstrap-expect", 0, "servers only: form the cluster once this many servers have met")
	fs.Var((*joinFlag)(&cc.Join), "join", "gossip address of a member to join (repeatable)")
	fs.StringVar(&cc.GossipAddr, "gossip-addr", cc.GossipAddr, "gossip listen address (UDP and TCP)")
	fs.StringVar(&cc.GossipAdvertise, "gossip-advertise", "", "gossip address peers use (default: -gossip-addr, or a private IP)")
	fs.StringVar(&cc.GRPCAddr, "grpc-addr", cc.GRPCAddr, "node-to-node gRPC listen address")
	fs.StringVar(&cc.GRPCAdvertise, "grpc-advertise", "", "gRPC address peers use (default: derived like -gossip-advertise)")
	fs.StringVar(&cc.HTTPAdvertise, "http-advertise", "", "HTTP address other nodes and clients use (default: -http-addr)")
	fs.StringVar(&cc.TLSCAFile, "tls-ca", "", "cluster CA certificate (PEM; from `stoke tls ca create`)")
	fs.StringVar(&cc.TLSCertFile, "tls-cert", "", "this node's certificate (PEM; from `stoke tls cert create`)")
	fs.StringVar(&cc.TLSKeyFile, "tls-key", "", "this node's private key (PEM)")
	fs.DurationVar(&cc.ReapTimeout, "reap-timeout", cc.ReapTimeout, "remove a node dead for this long from Raft and the node records")
	fs.DurationVar(&cc.DrainTimeout, "drain-timeout", cc.DrainTimeout, "how long a leaving node waits for in-flight work")
	fs.Int64Var(&cc.MemoryMB, "memory-mb", 0, "memory this node offers, in MB (default: the machine's)")
	fs.IntVar(&cc.CPUs, "cpus", 0, "CPUs this node offers (default: the machine's)")
}

// checkAdvertised refuses a node that would meet peers on other machines
// while advertising an address only this machine reaches: --raft-addr and
// --http-addr default to loopback, and such a node would be accepted into
// Raft yet never be reached. A node alone (development mode, or one that
// bootstraps itself and joins nobody) may keep the defaults.
func checkAdvertised(cfg node.Config) error {
	cc := cfg.Cluster
	if cfg.Dev || (len(cc.Join) == 0 && (cfg.Bootstrap || cc.BootstrapExpect == 1)) {
		return nil
	}
	return cluster.CheckAdvertised(firstSet(cc.GossipAdvertise, cc.GossipAddr),
		cluster.Advertised{What: "Raft", Addr: firstSet(cfg.RaftAdvertise, cfg.RaftAddr), Flag: "--raft-advertise"},
		cluster.Advertised{What: "gRPC", Addr: firstSet(cc.GRPCAdvertise, cc.GRPCAddr), Flag: "--grpc-advertise"},
		cluster.Advertised{What: "HTTP", Addr: firstSet(cc.HTTPAdvertise, cfg.HTTPAddr), Flag: "--http-advertise"})
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// joinFlag is --join: repeatable; the first use on the command line
// replaces what the config file listed (flags win).
type joinFlag []string

func (j *joinFlag) String() string { return strings.Join(*j, ",") }
func (j *joinFlag) Set(v string) error {
	if !joinFromFlags {
		*j, joinFromFlags = nil, true
	}
	*j = append(*j, v)
	return nil
}

var joinFromFlags bool

// configFlag finds -config/--config in args before the real parse, so the
// file is applied first and flags given on the command line win.
func configFlag(args []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// fileConfig is the agent's TOML config file: the same settings as the
// flags, named like them with underscores. TOML because it is the
// simplest of the three to write by hand, has real types (durations are
// strings like "72h", lists are lists), and one small dependency parses it.
type fileConfig struct {
	NodeID          *string   `toml:"node_id"`
	DataDir         *string   `toml:"data_dir"`
	HTTPAddr        *string   `toml:"http_addr"`
	HTTPAdvertise   *string   `toml:"http_advertise"`
	RaftAddr        *string   `toml:"raft_addr"`
	RaftAdvertise   *string   `toml:"raft_advertise"`
	GRPCAddr        *string   `toml:"grpc_addr"`
	GRPCAdvertise   *string   `toml:"grpc_advertise"`
	GossipAddr      *string   `toml:"gossip_addr"`
	GossipAdvertise *string   `toml:"gossip_advertise"`
	Region          *string   `toml:"region"`
	ClusterKeyFile  *string   `toml:"cluster_key_file"`
	Server          *bool     `toml:"server"`
	BootstrapExpect *int      `toml:"bootstrap_expect"`
	Join            []string  `toml:"join"`
	TLSCA           *string   `toml:"tls_ca"`
	TLSCert         *string   `toml:"tls_cert"`
	TLSKey          *string   `toml:"tls_key"`
	ReapTimeout     *duration `toml:"reap_timeout"`
	DrainTimeout    *duration `toml:"drain_timeout"`
	MemoryMB        *int64    `toml:"memory_mb"`
	CPUs            *int      `toml:"cpus"`
	LogLevel        *string   `toml:"log_level"`

	MetricsTokenFile *string `toml:"metrics_token_file"`
	MetricsOpen      *bool   `toml:"metrics_open"`

	InsecureNoSandbox  *bool     `toml:"insecure_no_sandbox"`
	MemoryBudgetMB     *int      `toml:"memory_budget_mb"`
	SandboxIdleTimeout *duration `toml:"sandbox_idle_timeout"`
	CPUMode            *string   `toml:"cpu_mode"`
	CPUFloorMB         *int      `toml:"cpu_floor_mb"`

	codeFileConfig
	asyncFileConfig
	httpFileConfig
	logFileConfig
}

// set copies a setting the file gave (from is nil when it did not) onto
// the config.
func set[T any](to, from *T) {
	if from != nil {
		*to = *from
	}
}

// setDuration is set for duration settings.
func setDuration(to *time.Duration, from *duration) {
	if from != nil {
		*to = time.Duration(*from)
	}
}

type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = duration(v)
	return err
}

// loadConfigFile applies the TOML file at path onto cfg (and logLevel).
// Unknown keys are an error: a typo must not silently fall back.
func loadConfigFile(path string, cfg *node.Config, logLevel *string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f fileConfig
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return fmt.Errorf("config %s: unknown setting %q", path, undecoded[0].String())
	}
	cc := &cfg.Cluster
	set(&cfg.NodeID, f.NodeID)
	set(&cfg.DataDir, f.DataDir)
	set(&cfg.HTTPAddr, f.HTTPAddr)
	set(&cc.HTTPAdvertise, f.HTTPAdvertise)
	set(&cfg.RaftAddr, f.RaftAddr)
	set(&cfg.RaftAdvertise, f.RaftAdvertise)
	set(&cc.GRPCAddr, f.GRPCAddr)
	set(&cc.GRPCAdvertise, f.GRPCAdvertise)
	set(&cc.GossipAddr, f.GossipAddr)
	set(&cc.GossipAdvertise, f.GossipAdvertise)
	set(&cfg.Region, f.Region)
	set(&cfg.ClusterKeyFile, f.ClusterKeyFile)
	set(&cc.TLSCAFile, f.TLSCA)
	set(&cc.TLSCertFile, f.TLSCert)
	set(&cc.TLSKeyFile, f.TLSKey)
	set(logLevel, f.LogLevel)
	set(&cc.Server, f.Server)
	set(&cc.BootstrapExpect, f.BootstrapExpect)
	if f.Join != nil {
		cc.Join = f.Join
	}
	setDuration(&cc.ReapTimeout, f.ReapTimeout)
	setDuration(&cc.DrainTimeout, f.DrainTimeout)
	set(&cc.MemoryMB, f.MemoryMB)
	set(&cc.CPUs, f.CPUs)
	set(&cfg.MetricsTokenFile, f.MetricsTokenFile)
	set(&cfg.MetricsOpen, f.MetricsOpen)
	set(&cfg.Worker.InsecureNoSandbox, f.InsecureNoSandbox)
	set(&cfg.Worker.MemoryBudgetMB, f.MemoryBudgetMB)
	setDuration(&cfg.Worker.IdleTimeout, f.SandboxIdleTimeout)
	set(&cfg.Worker.CPUFloorMB, f.CPUFloorMB)
	if f.CPUMode != nil {
		if cfg.Worker.CPUMode, err = runtime.ParseCPUMode(*f.CPUMode); err != nil {
			return fmt.Errorf("config %s: cpu_mode: %w", path, err)
		}
	}
	f.codeFileConfig.apply(cfg)
	f.asyncFileConfig.apply(cfg)
	f.httpFileConfig.apply(cfg)
	f.logFileConfig.apply(cfg)
	return nil
}
