// Package fsm is Stoke's replicated state machine: the metadata every node
// holds a replica of (accounts, access keys, functions with their $LATEST
// configuration, published versions, aliases, concurrency settings and node
// records) and the commands that change it.
//
// A Raft log entry is one command-type byte followed by a protobuf payload
// (see proto/fsmpb). Command types are append-only. Apply is deterministic: it
// reads no clock, no randomness and no I/O; the leader stamps the time into
// each command's header before the entry is appended, and identifiers such as
// revision ids are derived from the log index. Snapshots are streams of typed
// records and Restore always builds a fresh store.
//
// Reads are served from an in-memory go-memdb index, so the invoke path never
// waits on Raft. Objects returned by Store reads are shared with the index and
// must be treated as read-only; mutate a proto.Clone.
//
// This package does no I/O of its own and imports nothing from cluster, node,
// gRPC or memberlist; a test guards that rule.
package fsm
