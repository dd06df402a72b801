// Package node is the Stoke agent: it wires the fsm, cluster, placement and
// runtime packages into one process and serves the Lambda-compatible HTTP
// API and the node-to-node gRPC services.
//
// Every invocation, whatever node receives it, takes the same path
// (a.invoker, the router of invoke_route.go): a slot under the cluster-wide
// concurrency limits from this node's lease (node/admission, coordinated by
// the Raft leader, lease.go), placement on the ring of committed nodes
// (route.go), then attempts on the version's preferred nodes, warm
// sandboxes first, each run here (invoke_local.go) or forwarded over one
// gRPC hop (invoke_remote.go, invoke_service.go). Provisioned concurrency
// (provisioned*.go) keeps sandboxes initialised on those same nodes.
// docs/architecture.md describes the whole and its guarantees.
package node
