package check

import (
	"fmt"
	"strings"
	"time"
)

// Summary is one scenario run's line in the results table issue 9 asks
// for: operations, acknowledged, lost, duplicates and the longest time
// clients saw the service unavailable, with the verdict.
type Summary struct {
	Scenario string
	Seed     int64
	// Ops is every operation clients issued; Acked those the cluster
	// acknowledged.
	Ops, Acked int
	// Lost counts acknowledged effects that disappeared; Duplicates counts
	// extra deliveries (-1: not applicable to the scenario).
	Lost, Duplicates int
	// MaxUnavailable is the longest stretch without an acknowledgement.
	MaxUnavailable time.Duration
	// Duration is how long the run took, cluster start to verdict.
	Duration time.Duration
	// Failures lists every broken pass criterion; empty means pass.
	Failures []string
	// Skipped, when set, says why the scenario could not run (a feature
	// the agent lacks); the counts are then meaningless.
	Skipped string
}

// Pass reports whether every criterion held.
func (s Summary) Pass() bool { return len(s.Failures) == 0 }

// Failf records a broken criterion.
func (s *Summary) Failf(format string, args ...any) {
	s.Failures = append(s.Failures, fmt.Sprintf(format, args...))
}

// TableHeader is the header of the markdown table Row lines belong to.
const TableHeader = "| scenario | seed | operations | acknowledged | lost | duplicates | max unavailability (s) | run (s) | result |\n" +
	"|---|---|---|---|---|---|---|---|---|\n"

// Row renders s as one markdown table line.
func (s Summary) Row() string {
	dup := "-"
	if s.Duplicates >= 0 {
		dup = fmt.Sprint(s.Duplicates)
	}
	verdict := "pass"
	if s.Skipped != "" {
		reason, _, _ := strings.Cut(s.Skipped, ": ") // the reason, not the evidence
		return fmt.Sprintf("| %s | %d | - | - | - | - | - | - | skipped: %s |\n", s.Scenario, s.Seed, strings.ReplaceAll(reason, "|", "/"))
	}
	if !s.Pass() {
		verdict = "FAIL: " + strings.ReplaceAll(strings.Join(s.Failures, "; "), "|", "/")
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %s | %.1f | %.0f | %s |\n", s.Scenario, s.Seed, s.Ops, s.Acked,
		s.Lost, dup, s.MaxUnavailable.Seconds(), s.Duration.Seconds(), verdict)
}

// Table renders summaries as a markdown table.
func Table(rows []Summary) string {
	var b strings.Builder
	b.WriteString(TableHeader)
	for _, r := range rows {
		b.WriteString(r.Row())
	}
	return b.String()
}
