// Package clustertest starts in-process Stoke Raft clusters on 127.0.0.1
// with real TCP transports, t.TempDir() data and fast timeouts, for tests of
// any package that needs replicated state. Nodes can be killed and restarted
// from their data dirs.
package clustertest
