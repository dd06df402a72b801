package main

import (
	"flag"

	"github.com/stokehq/stoke/node"
)

// registerCodeFlags adds the code replication flags of `stoke agent`.
// Every node of a cluster should use the same values.
func registerCodeFlags(fs *flag.FlagSet, cfg *node.Config) {
	c := &cfg.Code
	fs.IntVar(&c.Replicas, "code-replicas", c.Replicas, "nodes that hold a complete copy of every code package (R; the cluster uses min(R, nodes))")
	fs.IntVar(&c.MinReplicas, "code-min-replicas", c.MinReplicas, "fewest copies an upload may succeed with while fewer than R nodes are alive")
	fs.DurationVar(&c.GCGrace, "code-gc-grace", c.GCGrace, "how long an unreferenced code package is kept before it is deleted")
	fs.DurationVar(&c.RepairInterval, "code-repair-interval", c.RepairInterval, "how often replica counts are checked and unreferenced packages collected")
	fs.DurationVar(&c.ScrubInterval, "code-scrub-interval", c.ScrubInterval, "how often every local code package is re-read against its checksums")
	fs.Int64Var(&c.UnpackedBudgetBytes, "code-unpacked-budget-bytes", c.UnpackedBudgetBytes, "disk the unpacked code trees may use (least recently used idle trees go first; 0: no bound)")
	fs.StringVar(&c.UnpackedDir, "code-unpacked-dir", c.UnpackedDir, "where unpacked code trees live (default: DATA_DIR/code/unpacked; a tmpfs speeds up first cold starts)")
}

// codeFileConfig holds the same settings for the config file (embedded
// in fileConfig, so the keys sit at the top level).
type codeFileConfig struct {
	CodeReplicas            *int      `toml:"code_replicas"`
	CodeMinReplicas         *int      `toml:"code_min_replicas"`
	CodeGCGrace             *duration `toml:"code_gc_grace"`
	CodeRepairInterval      *duration `toml:"code_repair_interval"`
	CodeScrubInterval       *duration `toml:"code_scrub_interval"`
	CodeUnpackedBudgetBytes *int64    `toml:"code_unpacked_budget_bytes"`
	CodeUnpackedDir         *string   `toml:"code_unpacked_dir"`
}

func (f *codeFileConfig) apply(cfg *node.Config) {
	c := &cfg.Code
	set(&c.Replicas, f.CodeReplicas)
	set(&c.MinReplicas, f.CodeMinReplicas)
	setDuration(&c.GCGrace, f.CodeGCGrace)
	setDuration(&c.RepairInterval, f.CodeRepairInterval)
	setDuration(&c.ScrubInterval, f.CodeScrubInterval)
	set(&c.UnpackedBudgetBytes, f.CodeUnpackedBudgetBytes)
	set(&c.UnpackedDir, f.CodeUnpackedDir)
}
