// Package scenario runs issue 9's chaos scenarios against clusters of real
// stoke agents: each starts a cluster (chaos/harness), drives it with
// recording clients (chaos/client), injects named faults (chaos/fault) on
// a schedule drawn from its seed, and judges the run from the recorded
// history (chaos/check). Every run ends with a results row (operations,
// acknowledged, lost, duplicates, max unavailability) and its pass
// criteria asserted; a failing run prints the command that repeats it.
//
// Each scenario is one small file that registers itself in All. `go test`
// runs the smoke subset with one seed (part of `make test`, about two
// minutes); STOKE_CHAOS=full runs every scenario with the seeds in
// STOKE_CHAOS_SEEDS (`make chaos`, which also writes docs/reliability.md).
// A scenario whose feature the agent does not have yet skips and says
// which one.
package scenario
