// Package node is the Stoke agent: it wires the fsm, cluster, placement and
// runtime packages into one process and serves the Lambda-compatible HTTP
// API and the node-to-node gRPC services.
package node
