package harness

import (
	"errors"
	"fmt"
	"time"
)

// NetworkMode selects how nodes are addressed and isolated.
type NetworkMode int

const (
	// NetworkAuto uses namespaces when the process can create them (root
	// with `ip` and `nsenter`), loopback otherwise.
	NetworkAuto NetworkMode = iota
	// NetworkLoopback binds each node to its own 127.213.X.Y address.
	// Partitions and packet loss are unsupported.
	NetworkLoopback
	// NetworkNamespaces runs each node in its own network namespace.
	NetworkNamespaces
)

func (m NetworkMode) String() string {
	switch m {
	case NetworkAuto:
		return "auto"
	case NetworkLoopback:
		return "loopback"
	case NetworkNamespaces:
		return "namespaces"
	}
	return fmt.Sprintf("NetworkMode(%d)", int(m))
}

// Config describes a cluster to start.
type Config struct {
	// Servers is the number of Raft voters: 1, 3 or 5.
	Servers int
	// Workers is the number of non-voting nodes.
	Workers int
	// Network selects addressing and isolation.
	Network NetworkMode
	// DataDiskMB, when positive, mounts a tmpfs of this many MB over each
	// node's data dir before it starts, so FillDisk can fill it (root only).
	DataDiskMB int
	// ReadyTimeout bounds cluster formation in Start.
	ReadyTimeout time.Duration
	// LogLevel is the agents' --log-level.
	LogLevel string
	// ExtraArgs are appended to every agent's command line.
	ExtraArgs []string
	// Binary is the stoke binary to run; empty means Binary().
	Binary string
	// KeepDir keeps the run directory (data and logs) even when the test
	// passes; it is always kept when the test fails.
	KeepDir bool
}

// DefaultConfig is three servers, no workers, namespaces when possible.
func DefaultConfig() Config {
	return Config{Servers: 3, ReadyTimeout: 60 * time.Second, LogLevel: "info"}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Servers != 1 && c.Servers != 3 && c.Servers != 5:
		return fmt.Errorf("harness: Servers must be 1, 3 or 5, not %d", c.Servers)
	case c.Workers < 0 || c.Servers+c.Workers > 20:
		return fmt.Errorf("harness: Workers must be 0..%d", 20-c.Servers)
	case c.DataDiskMB < 0 || (c.DataDiskMB > 0 && c.DataDiskMB < 16):
		return errors.New("harness: DataDiskMB must be 0 or at least 16")
	case c.ReadyTimeout <= 0:
		return errors.New("harness: ReadyTimeout must be positive")
	case c.Network < NetworkAuto || c.Network > NetworkNamespaces:
		return fmt.Errorf("harness: unknown network mode %d", int(c.Network))
	}
	return nil
}
