package cluster

import (
	"fmt"
	"net"
	"strings"
)

// Advertised is one address a node gives its peers, with the setting an
// operator changes to fix it.
type Advertised struct {
	// What names the address in messages ("Raft", "HTTP").
	What string
	// Addr is host:port as peers would dial it; an unspecified host
	// (0.0.0.0, ::, empty) is fine, since the node then advertises a
	// reachable host in its place.
	Addr string
	// Flag is the setting that changes it ("--raft-advertise").
	Flag string
}

// CheckAdvertised refuses an address no peer on another machine could
// reach. A node whose gossip address (gossip, the address it advertises or
// binds for gossip) is not loopback meets peers on other machines, so none
// of the addresses it advertises may be loopback: such a node is accepted
// into Raft as a member nobody can reach, and the leader fails to replicate
// to it forever. A node whose gossip is on loopback is a cluster on one
// machine (tests, `stoke dev`) and is not checked.
func CheckAdvertised(gossip string, addrs ...Advertised) error {
	if isLoopbackHost(hostOf(gossip)) {
		return nil
	}
	for _, a := range addrs {
		if isLoopbackHost(hostOf(a.Addr)) {
			return fmt.Errorf("cluster: the %s address %s is loopback while gossip is on %s: "+
				"peers on other machines could never reach it; set %s to an address they can reach",
				a.What, a.Addr, gossip, a.Flag)
		}
	}
	return nil
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// isLoopbackHost reports whether host names this machine only: a loopback
// IP or "localhost".
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
