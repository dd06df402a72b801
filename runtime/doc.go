// Package runtime runs function code: sandboxes (a process tree in its own
// Linux namespaces with a private root, a cgroup, rlimits, no capabilities
// and a seccomp filter), the Lambda Runtime API each sandbox talks to, and
// the pool that keeps sandboxes warm, bounds them by a memory budget and
// records their logs.
//
// It knows nothing of clusters or HTTP frontends: callers hand it a function
// specification, a code reference and an invocation, and get a result.
package runtime
