// Package proto holds Stoke's protobuf sources and the Go code generated
// from them (committed; `make proto` regenerates and `make verify` checks it
// is current). fsmpb carries the replicated metadata and Raft commands;
// it has no gRPC dependency so the fsm package can import it.
package proto
