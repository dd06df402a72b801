package async

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a node's asynchronous invocation queue. The agent sets
// NodeID, Region, Dir and Logger; the rest are tunables with defaults in
// DefaultConfig, checked by Validate.
type Config struct {
	// NodeID is this node's id; event records name it as a payload holder.
	NodeID string
	// Region is the region in the ARNs of destination records.
	Region string
	// Dir holds this node's payload log.
	Dir string

	// Copies is how many nodes store an event's payload, this node
	// included, before the event is acknowledged with 202. With fewer live
	// nodes the queue stores as many copies as there are (a lone node: one)
	// and counts the shortfall in stoke_async_underreplicated_total.
	Copies int
	// SegmentBytes is the size at which the payload log starts a new
	// segment file.
	SegmentBytes int64
	// MaxBatchEvents and MaxBatchBytes bound one group commit: one write
	// and fsync per holder and one Raft entry for every event in it.
	MaxBatchEvents int
	MaxBatchBytes  int
	// MaxInflightBatches is how many group commits may be in flight at
	// once; events that arrive meanwhile wait and form the next batch.
	MaxInflightBatches int
	// AcceptTimeout bounds one group commit (replication and Raft).
	AcceptTimeout time.Duration
	// CloseTimeout bounds a graceful Close: attempts in flight finishing
	// and their outcomes committing.
	CloseTimeout time.Duration

	// Workers bounds the deliveries in flight on this node.
	Workers int
	// FunctionErrorDelays are the waits before the first, second, ...
	// retry after a function error (Lambda: about 1, then 2 minutes); the
	// last one repeats.
	FunctionErrorDelays []time.Duration
	// BackoffMin and BackoffMax bound the wait after a throttle or a
	// system error: it doubles from BackoffMin up to BackoffMax (Lambda:
	// 1 s to 5 min), with jitter, until the event's maximum age.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// TimeScale multiplies every delay above and every event age limit:
	// 1 is real time; tests use e.g. 0.001, so a 60 s maximum age lasts
	// 60 ms and a 1 min retry delay 60 ms.
	TimeScale float64

	// RescanInterval is how often the node re-reads every event it holds,
	// besides the passes that new log entries and membership changes
	// trigger.
	RescanInterval time.Duration
	// SweepInterval is how often finished events' payloads are deleted
	// from the log and (on the Raft leader) dead letters older than
	// DeadLetterRetention are purged.
	SweepInterval time.Duration
	// SweepGrace protects payloads written less than this long ago from
	// the sweep: their record may still be on its way through Raft (an
	// entry appended before a leader change can commit well after its
	// proposer gave up). At least twice AcceptTimeout.
	SweepGrace time.Duration
	// DeadLetterRetention is how long an event stays in the built-in
	// dead-letter queue (SQS's maximum retention: 14 days).
	DeadLetterRetention time.Duration

	Logger *slog.Logger

	// OnAttempt, if set, is called after every delivery attempt, from the
	// delivering goroutine; it must not block. Tests count attempts and
	// duplicates with it.
	OnAttempt func(Attempt)
}

// DefaultConfig returns production settings (Lambda's timings).
func DefaultConfig() Config {
	return Config{
		Copies:              2,
		SegmentBytes:        64 << 20,
		MaxBatchEvents:      1000,
		MaxBatchBytes:       3 << 20,
		MaxInflightBatches:  4,
		AcceptTimeout:       10 * time.Second,
		CloseTimeout:        5 * time.Second,
		Workers:             64,
		FunctionErrorDelays: []time.Duration{time.Minute, 2 * time.Minute},
		BackoffMin:          time.Second,
		BackoffMax:          5 * time.Minute,
		TimeScale:           1,
		RescanInterval:      30 * time.Second,
		SweepInterval:       time.Minute,
		SweepGrace:          5 * time.Minute,
		DeadLetterRetention: 14 * 24 * time.Hour,
	}
}

// Validate reports the first tunable that cannot work. The fields the
// agent fills in (NodeID, Region, Dir, Logger) are checked by New.
func (c *Config) Validate() error {
	switch {
	case c.Copies < 1:
		return errors.New("async: Copies must be at least 1")
	case c.SegmentBytes < 1<<20:
		return errors.New("async: SegmentBytes must be at least 1 MiB")
	case c.MaxBatchEvents < 1 || c.MaxBatchBytes < 2<<20:
		return errors.New("async: MaxBatchEvents must be positive and MaxBatchBytes at least 2 MiB (one event and its record)")
	case c.MaxInflightBatches < 1 || c.Workers < 1:
		return errors.New("async: MaxInflightBatches and Workers must be positive")
	case c.AcceptTimeout <= 0 || c.CloseTimeout <= 0 || c.RescanInterval <= 0 || c.SweepInterval <= 0 || c.SweepGrace <= 0 || c.DeadLetterRetention <= 0:
		return errors.New("async: AcceptTimeout, CloseTimeout, RescanInterval, SweepInterval, SweepGrace and DeadLetterRetention must be positive")
	case c.SweepGrace < 2*c.AcceptTimeout:
		return fmt.Errorf("async: SweepGrace %v must be at least twice AcceptTimeout %v", c.SweepGrace, c.AcceptTimeout)
	case len(c.FunctionErrorDelays) == 0:
		return errors.New("async: FunctionErrorDelays needs at least one delay")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("async: backoff bounds [%v, %v] are not a positive range", c.BackoffMin, c.BackoffMax)
	case !(c.TimeScale > 0) || c.TimeScale > 1:
		return fmt.Errorf("async: TimeScale %v must be in (0, 1]", c.TimeScale)
	}
	for _, d := range c.FunctionErrorDelays {
		if d < 0 {
			return errors.New("async: FunctionErrorDelays must not be negative")
		}
	}
	return nil
}

// scaled applies TimeScale to a delay or an age limit.
func (c *Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.TimeScale)
}
