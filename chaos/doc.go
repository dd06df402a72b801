// Package chaos injects faults into clusters of real stoke processes and
// judges each run by invariants checked over the recorded client history:
// linearizable control-plane operations, no acknowledged async event lost,
// no wrong invocation result, concurrency limits held, replicas identical.
package chaos
