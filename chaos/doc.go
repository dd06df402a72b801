// Package chaos holds Stoke's fault-injection tests: clusters of real
// `stoke agent` processes are driven through the public API while named
// faults break them, and every run is judged afterwards, from the history
// the clients recorded, against invariants: control-plane operations
// linearizable, no acknowledged write or async event lost, no invocation
// ever given another's result, concurrency limits held as the function
// itself saw them, and every replica's state identical once healed.
//
// The work is split the way etcd's robustness tests split it:
// chaos/harness starts and breaks clusters (one network namespace per node
// so partitions are real, everything removed on exit); chaos/fault names
// the failures (kill, pause, partition, loss, latency, full disk);
// chaos/client records what clients saw into a chaos/history; chaos/check
// judges histories without touching a cluster (porcupine for
// linearizability); chaos/scenario combines them into the scenarios of
// issue 9, each one file with its pass criteria and a results row. See
// docs/chaos.md for how to run them and docs/reliability.md for the last
// results.
package chaos
