package main

import (
	"flag"

	"github.com/stokehq/stoke/node"
)

// registerAsyncFlags adds the asynchronous invocation flags of `stoke
// agent`. Lambda's timings are the defaults; the time scale exists for
// tests and demonstrations (0.001 turns a 1 minute retry delay into 60 ms).
func registerAsyncFlags(fs *flag.FlagSet, cfg *node.Config) {
	ac := &cfg.Async
	fs.IntVar(&ac.Copies, "async-copies", ac.Copies, "nodes that store an Event invocation's payload before it is acknowledged (this one included)")
	fs.IntVar(&ac.Workers, "async-workers", ac.Workers, "async deliveries in flight on this node")
	fs.Float64Var(&ac.TimeScale, "async-time-scale", ac.TimeScale, "multiply every async retry delay and event age limit by this (0 < s <= 1; tests)")
	fs.DurationVar(&ac.DeadLetterRetention, "async-dlq-retention", ac.DeadLetterRetention, "how long events stay in the built-in dead-letter queue")
}

// asyncFileConfig holds the same settings for the config file (embedded in
// fileConfig, so the keys sit at the top level).
type asyncFileConfig struct {
	AsyncCopies       *int      `toml:"async_copies"`
	AsyncWorkers      *int      `toml:"async_workers"`
	AsyncTimeScale    *float64  `toml:"async_time_scale"`
	AsyncDLQRetention *duration `toml:"async_dlq_retention"`
}

func (f *asyncFileConfig) apply(cfg *node.Config) {
	ac := &cfg.Async
	set(&ac.Copies, f.AsyncCopies)
	set(&ac.Workers, f.AsyncWorkers)
	set(&ac.TimeScale, f.AsyncTimeScale)
	setDuration(&ac.DeadLetterRetention, f.AsyncDLQRetention)
}
