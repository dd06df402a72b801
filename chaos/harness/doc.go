// Package harness starts clusters of real `stoke agent` processes on this
// machine for chaos tests and gives faults the handles they need: kill,
// restart, pause and resume a node; cut, one way or both, the network
// between sets of nodes; drop a share of a node's packets; fill a node's
// data disk.
//
// Each node gets its own IP address, data dir and log file. As root, each
// node runs in its own network namespace (stoke-chaos-PID-SEQ-nI) with a
// veth pair into a bridge on a private 10.213.X.0/24 subnet, because
// loopback addresses cannot separate nodes: a connection from an unbound
// socket to 127.0.0.3 leaves from 127.0.0.1 whoever opens it, so iptables
// rules on 127.0.0.x pairs cannot tell node A's packets from node B's.
// With namespaces every packet carries its node's address, partition rules
// live inside the receiving node's namespace (INPUT drops, so a cut is
// silent like a real one instead of the EPERM an OUTPUT drop returns to the
// sender), and deleting a namespace removes its rules with it. The test
// process reaches every node through the bridge. Without root, nodes bind
// 127.213.X.2, .3, ... on loopback instead and only process faults work.
//
// Everything a cluster creates (processes, namespaces, veths, the bridge,
// an iptables chain STOKE-CHAOS-PID-SEQ jumped to from FORWARD so bridged
// traffic passes whatever the host's policy, tmpfs mounts) is removed by
// Cluster.Close, which t.Cleanup and a SIGINT/SIGTERM handler call. A run
// that died anyway (SIGKILL, a test timeout) leaves things named after its
// pid; Sweep, which RunMain calls first, removes those of dead pids.
// Agents get SIGKILL as their parent-death signal, so they never outlive
// the test process.
package harness
