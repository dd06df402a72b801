package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"time"

	"github.com/stokehq/stoke/node/async"
	"github.com/stokehq/stoke/node/httpguard"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// Config configures one Stoke agent. Every field has a default in
// DefaultConfig; cmd/stoke maps flags and the config file onto it.
type Config struct {
	// NodeID names this node in the cluster; empty means the id stored in
	// the data dir, or a new random one on first start.
	NodeID string
	// DataDir holds everything the node persists: Raft state, the cluster
	// key, blobs, logs and sandbox scratch space.
	DataDir string
	// HTTPAddr is where the Lambda API, /metrics and health endpoints listen.
	HTTPAddr string
	// RaftAddr is where the Raft transport listens; RaftAdvertise is the
	// address peers dial (empty: RaftAddr).
	RaftAddr      string
	RaftAdvertise string
	// Region is the AWS region name used in ARNs and SigV4 scopes.
	Region string
	// Bootstrap forms a new single-server cluster when the data dir holds
	// no Raft state (dev mode and the first server of a cluster).
	Bootstrap bool
	// Dev relaxes production defaults for a local single machine:
	// plaintext node-to-node traffic on loopback, fast timeouts.
	Dev bool
	// NoAuth disables SigV4 verification (local experiments only; logged
	// loudly at start).
	NoAuth bool
	// ClusterKeyFile is the cluster secret shared by every node (created
	// on first start when missing). Default: DataDir/keys/cluster.key.
	ClusterKeyFile string
	// CredentialsFile receives the first admin access key in AWS CLI
	// credentials format (0600). Default: DataDir/credentials.
	CredentialsFile string
	// MetricsTokenFile receives the bearer token /metrics requires (0600;
	// the same token on every node of a cluster). Default:
	// DataDir/metrics-token.
	MetricsTokenFile string
	// MetricsOpen serves /metrics without a token (Dev does too). Only for
	// a scrape network no tenant can reach: /metrics names every tenant's
	// functions.
	MetricsOpen bool
	// Raft timing; zero values take cluster.DefaultRaftConfig's.
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	// ShutdownTimeout bounds graceful shutdown (in-flight requests finish).
	ShutdownTimeout time.Duration
	// MaxRequestBytes bounds any API request body that is not a function
	// upload (uploads have their own, larger bound).
	MaxRequestBytes int64
	// MaxBufferedRequestBytes bounds the request body bytes all in-flight
	// API requests may hold at once; past it a request is answered 429
	// TooManyRequestsException before its body is read, so no number of
	// clients can make the node buffer more.
	MaxBufferedRequestBytes int64
	// HTTP bounds the API's connections (in total and per client address)
	// and how slowly a request body may arrive.
	HTTP httpguard.Config
	// Cluster configures gossip, node-to-node gRPC, roles and reconcile.
	Cluster ClusterConfig

	// Worker configures this node's sandboxes.
	Worker WorkerConfig
	// Async configures the asynchronous invocation queue (NodeID, Region,
	// Dir and Logger are filled in by the agent).
	Async async.Config
	// Code configures code package replication, repair and collection.
	Code CodeConfig
	// Routing configures placement, forwarding, cluster-wide admission and
	// provisioned concurrency.
	Routing RoutingConfig

	Logger *slog.Logger
	// Console receives the few messages meant for a person at a terminal
	// (where the admin credentials are). It may be a log (stderr under
	// systemd or docker), so it never receives a secret. nil: none.
	Console io.Writer
	// SecretConsole receives the bootstrap admin credentials, secret
	// included, once when they are created. Set it only to a terminal
	// (cmd/stoke: stdout when it is one); nil: the secret stays in the
	// credentials file and Console is told where.
	SecretConsole io.Writer
}

// DefaultConfig returns a configuration that runs one node on loopback.
func DefaultConfig() Config {
	return Config{
		DataDir:         "stoke-data",
		HTTPAddr:        "127.0.0.1:9000",
		RaftAddr:        "127.0.0.1:9101",
		Region:          "local",
		ShutdownTimeout: 15 * time.Second,
		MaxRequestBytes: 6 << 20,
		Cluster:         DefaultClusterConfig(),
		Async:           async.DefaultConfig(),
		Code:            DefaultCodeConfig(),
		Routing:         DefaultRoutingConfig(),
		Worker:          WorkerConfig{Logs: runtime.DefaultLogLimits(), CPUFloorMB: runtime.DefaultPoolConfig().CPUFloorMB},
		Logger:          slog.Default(),

		MaxBufferedRequestBytes: lambdaapi.DefaultMaxBufferedBodyBytes,
		HTTP:                    httpguard.DefaultConfig(),
	}
}

var regionRE = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("node: DataDir is required")
	}
	if !regionRE.MatchString(c.Region) {
		return fmt.Errorf("node: region %q must be 1-32 lowercase letters, digits or dashes", c.Region)
	}
	for name, addr := range map[string]string{"HTTPAddr": c.HTTPAddr, "RaftAddr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("node: %s %q: %w", name, addr, err)
		}
	}
	if c.ShutdownTimeout <= 0 || c.MaxRequestBytes <= 0 || c.MaxBufferedRequestBytes <= 0 {
		return errors.New("node: ShutdownTimeout, MaxRequestBytes and MaxBufferedRequestBytes must be positive")
	}
	if c.Logger == nil {
		return errors.New("node: Logger is required")
	}
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if err := c.Async.Validate(); err != nil {
		return err
	}
	if err := c.Routing.validate(); err != nil {
		return err
	}
	if err := c.Code.Validate(); err != nil {
		return err
	}
	if err := c.Worker.Logs.Validate(); err != nil {
		return fmt.Errorf("node: function %w", err)
	}
	return c.Cluster.validate(c.Dev)
}

func (c *Config) clusterKeyFile() string {
	if c.ClusterKeyFile != "" {
		return c.ClusterKeyFile
	}
	return filepath.Join(c.DataDir, "keys", "cluster.key")
}

func (c *Config) credentialsFile() string {
	if c.CredentialsFile != "" {
		return c.CredentialsFile
	}
	return filepath.Join(c.DataDir, "credentials")
}

func (c *Config) metricsTokenFile() string {
	if c.MetricsTokenFile != "" {
		return c.MetricsTokenFile
	}
	return filepath.Join(c.DataDir, "metrics-token")
}

// WorkerConfig configures the node's worker: its sandbox pool.
type WorkerConfig struct {
	// InsecureNoSandbox runs function code as plain processes, without
	// namespaces, cgroups or seccomp (for machines where sandboxing is
	// impossible; logged loudly).
	InsecureNoSandbox bool
	// MemoryBudgetMB bounds the memory of all sandboxes on the node
	// (0: the runtime's default, derived from the machine's memory).
	MemoryBudgetMB int
	// IdleTimeout is how long an idle sandbox stays warm (0: default).
	IdleTimeout time.Duration
	// CPUMode shares the CPU between sandboxes by weight (work-conserving,
	// the default) or caps each at its memory's share of a vCPU (quota).
	CPUMode runtime.CPUMode
	// CPUFloorMB is the least CPU weight of a sandbox in weight mode, in
	// memory terms (runtime.PoolConfig.CPUFloorMB); 0 is no floor.
	CPUFloorMB int
	// Logs bound the function logs the node writes under DATA_DIR/logs
	// (bytes per function and per account per window, a free-space floor)
	// and how long they are kept; docs/runtime.md#log-limits.
	Logs runtime.LogLimits
}
