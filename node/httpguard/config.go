package httpguard

import (
	"errors"
	"fmt"
	"time"
)

// Config bounds what clients may hold of a server.
type Config struct {
	// MaxConns bounds the connections the listener holds open at once;
	// a connection past it is closed as soon as it is accepted. Keep it
	// well below the process's file-descriptor limit.
	MaxConns int
	// MaxConnsPerAddr bounds the connections from one client IP address,
	// so one address cannot take every slot.
	MaxConnsPerAddr int
	// BodyGrace is how long a request body may take before BodyMinRate
	// applies to it.
	BodyGrace time.Duration
	// BodyMinRate is the slowest average rate, in bytes per second, a
	// request body may arrive at once BodyGrace has passed: a body of n
	// bytes must be complete within BodyGrace + n/BodyMinRate of its
	// first read, and every prefix of it likewise.
	BodyMinRate int64
}

// DefaultConfig allows 10,000 connections, 2,048 from one address (a load
// generator or a NAT gateway with a thousand concurrent invokes fits), 10 s
// of grace for a body and then 64 KiB/s (a 70 MB upload may take 18 min).
func DefaultConfig() Config {
	return Config{
		MaxConns:        10_000,
		MaxConnsPerAddr: 2_048,
		BodyGrace:       10 * time.Second,
		BodyMinRate:     64 << 10,
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConns <= 0 {
		errs = append(errs, fmt.Errorf("httpguard: MaxConns %d must be positive", c.MaxConns))
	}
	if c.MaxConnsPerAddr <= 0 || c.MaxConnsPerAddr > c.MaxConns {
		errs = append(errs, fmt.Errorf("httpguard: MaxConnsPerAddr %d must be positive and at most MaxConns (%d)", c.MaxConnsPerAddr, c.MaxConns))
	}
	if c.BodyGrace <= 0 {
		errs = append(errs, fmt.Errorf("httpguard: BodyGrace %v must be positive", c.BodyGrace))
	}
	if c.BodyMinRate <= 0 {
		errs = append(errs, fmt.Errorf("httpguard: BodyMinRate %d must be positive", c.BodyMinRate))
	}
	return errors.Join(errs...)
}
