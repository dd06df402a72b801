// Package sim replays invocation traces through a simulated Stoke cluster
// to compare placement policies without sockets, processes or clocks.
//
// A Trace holds per-minute invocation counts per function, with each
// function's memory and a duration distribution: LoadAzure reads the
// Azure Functions 2019 trace (a 100-function sample ships in testdata),
// and Synthetic generates a seeded one with a few hot functions, a long
// tail of rare and timer-driven ones, and bursts. Run spreads each
// minute's counts over the minute deterministically and replays them
// through N nodes, each with a sandbox memory budget; a sandbox is busy
// for an invocation's duration and then stays warm for a keep-alive time.
// An invocation is a warm hit when the node it lands on holds an idle
// sandbox of its function; otherwise that node cold-starts one if its
// memory allows (evicting idle sandboxes, least recently used first), or
// the invocation moves to the policy's next candidate. Policies are
// Stoke's ring with bounded loads, the same ring without bounds, and
// random placement. The benchmarks in this package print the comparison
// (docs/performance.md, "Placement").
//
// What the simulation leaves out is listed in docs/placement.md: CPU
// contention, network and forwarding latency, each node's partial view
// of the others' load, and node failures.
package sim
