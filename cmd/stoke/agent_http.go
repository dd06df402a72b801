package main

import (
	"flag"

	"github.com/stokehq/stoke/node"
)

// registerHTTPFlags maps the API's client bounds (node.Config.HTTP and the
// buffered-body budget) onto flags.
func registerHTTPFlags(fs *flag.FlagSet, cfg *node.Config) {
	h := &cfg.HTTP
	fs.IntVar(&h.MaxConns, "http-max-conns", h.MaxConns, "connections the API holds at once; more are closed on accept (keep below the fd limit)")
	fs.IntVar(&h.MaxConnsPerAddr, "http-max-conns-per-addr", h.MaxConnsPerAddr, "connections the API holds from one client IP address")
	fs.DurationVar(&h.BodyGrace, "http-body-grace", h.BodyGrace, "how long a request body may take before the minimum rate applies")
	fs.Int64Var(&h.BodyMinRate, "http-body-min-rate", h.BodyMinRate, "slowest average rate, bytes/s, a request body may arrive at after the grace (408 below it)")
	fs.Int64Var(&cfg.MaxBufferedRequestBytes, "max-buffered-request-bytes", cfg.MaxBufferedRequestBytes, "request body bytes all in-flight API requests may hold at once (429 past it)")
}

// httpFileConfig holds the same settings for the config file (embedded in
// fileConfig, so the keys sit at the top level).
type httpFileConfig struct {
	HTTPMaxConns            *int      `toml:"http_max_conns"`
	HTTPMaxConnsPerAddr     *int      `toml:"http_max_conns_per_addr"`
	HTTPBodyGrace           *duration `toml:"http_body_grace"`
	HTTPBodyMinRate         *int64    `toml:"http_body_min_rate"`
	MaxBufferedRequestBytes *int64    `toml:"max_buffered_request_bytes"`
}

func (f *httpFileConfig) apply(cfg *node.Config) {
	h := &cfg.HTTP
	set(&h.MaxConns, f.HTTPMaxConns)
	set(&h.MaxConnsPerAddr, f.HTTPMaxConnsPerAddr)
	setDuration(&h.BodyGrace, f.HTTPBodyGrace)
	set(&h.BodyMinRate, f.HTTPBodyMinRate)
	set(&cfg.MaxBufferedRequestBytes, f.MaxBufferedRequestBytes)
}
