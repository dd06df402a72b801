package main

import (
	"flag"

	"github.com/stokehq/stoke/node"
)

// registerLogFlags adds the function log flags of `stoke agent`: what the
// node's sandboxes may write under DATA_DIR/logs and how long it is kept
// (docs/runtime.md#log-limits).
func registerLogFlags(fs *flag.FlagSet, cfg *node.Config) {
	l := &cfg.Worker.Logs
	fs.DurationVar(&l.Retention, "function-logs-retention", l.Retention, "delete function log streams not written for this long (0: keep forever)")
	fs.DurationVar(&l.Window, "function-logs-window", l.Window, "the period the function log byte limits count over")
	fs.Int64Var(&l.FunctionBytes, "function-logs-bytes-per-function", l.FunctionBytes, "bytes one function may log on this node per window; the rest is dropped with a marker line (0: no bound)")
	fs.Int64Var(&l.AccountBytes, "function-logs-bytes-per-account", l.AccountBytes, "bytes all of one account's functions may log on this node per window (0: no bound)")
	fs.Int64Var(&l.MinFreeBytes, "function-logs-min-free-bytes", l.MinFreeBytes, "stop writing function logs while the log disk has less free space than this (0: never stop)")
}

// logFileConfig holds the same settings for the config file (embedded in
// fileConfig, so the keys sit at the top level).
type logFileConfig struct {
	FunctionLogsRetention       *duration `toml:"function_logs_retention"`
	FunctionLogsWindow          *duration `toml:"function_logs_window"`
	FunctionLogsBytesPerFunc    *int64    `toml:"function_logs_bytes_per_function"`
	FunctionLogsBytesPerAccount *int64    `toml:"function_logs_bytes_per_account"`
	FunctionLogsMinFreeBytes    *int64    `toml:"function_logs_min_free_bytes"`
}

func (f *logFileConfig) apply(cfg *node.Config) {
	l := &cfg.Worker.Logs
	setDuration(&l.Retention, f.FunctionLogsRetention)
	setDuration(&l.Window, f.FunctionLogsWindow)
	set(&l.FunctionBytes, f.FunctionLogsBytesPerFunc)
	set(&l.AccountBytes, f.FunctionLogsBytesPerAccount)
	set(&l.MinFreeBytes, f.FunctionLogsMinFreeBytes)
}
