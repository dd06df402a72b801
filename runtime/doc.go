// Package runtime runs function code on one node, the way AWS Lambda's
// workers do. A Pool keeps execution environments (sandboxes) for function
// versions: a cold start creates one, the bootstrap of the function's runtime
// (a provided.al2023 binary, or Stoke's own Python or Node.js bootstrap,
// embedded in this package) pulls events from the Lambda Runtime API, and the
// sandbox is reused while warm for invocations with the same FunctionSpec.Key,
// within a per-node memory budget, until its keep-alive ends.
//
// A sandbox is a process tree in its own mount, pid, ipc, uts, network and
// user namespaces, with a private read-only root (host /usr and /lib*, the
// code at /var/task, layers at /opt, a sized tmpfs at /tmp, a fresh /proc, a
// minimal /dev), a v1 or v2 cgroup for memory, CPU and pids, 1024 files, no
// capabilities, no_new_privs and a seccomp filter. Sandboxes are this binary
// re-executed as a small init, which is why main (and TestMain of packages
// that start sandboxes) must call MaybeRunSandboxInit first. The agent itself
// serves every sandbox's Runtime API on 127.0.0.1:9001 inside that sandbox's
// network namespace, so no sandbox can reach another's API or the node.
//
// Function failures (errors, timeouts, crashes, oversized responses, init
// errors) come back as a Result shaped like Lambda's; Go errors are reserved
// for the platform (saturation, queueing, unsupported machine). Output is
// written to per-sandbox log streams with Lambda's START/END/REPORT lines.
// The package knows nothing of clusters or HTTP frontends; docs/runtime.md
// describes the design.
package runtime
