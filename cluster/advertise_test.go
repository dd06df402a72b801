package cluster_test

import (
	"strings"
	"testing"

	"github.com/stokehq/stoke/cluster"
)

func TestCheckAdvertisedRefusesLoopbackToOtherMachines(t *testing.T) {
	raft := func(addr string) cluster.Advertised {
		return cluster.Advertised{What: "Raft", Addr: addr, Flag: "--raft-advertise"}
	}
	http := func(addr string) cluster.Advertised {
		return cluster.Advertised{What: "HTTP", Addr: addr, Flag: "--http-advertise"}
	}
	cases := []struct {
		name   string
		gossip string
		addrs  []cluster.Advertised
		want   string // "" means accepted
	}{
		{"all on loopback (one machine)", "127.0.0.1:7946", []cluster.Advertised{raft("127.0.0.1:9101"), http("127.0.0.1:9000")}, ""},
		{"localhost gossip", "localhost:7946", []cluster.Advertised{raft("127.0.0.1:9101")}, ""},
		{"all reachable", "10.0.0.5:7946", []cluster.Advertised{raft("10.0.0.5:9101"), http("10.0.0.5:9000")}, ""},
		{"unspecified binds", "0.0.0.0:7946", []cluster.Advertised{raft("0.0.0.0:9101"), http("[::]:9000")}, ""},
		{"default raft address", "0.0.0.0:7946", []cluster.Advertised{raft("127.0.0.1:9101"), http("10.0.0.5:9000")}, "--raft-advertise"},
		{"loopback HTTP", "10.0.0.5:7946", []cluster.Advertised{raft("10.0.0.5:9101"), http("127.0.0.1:9000")}, "--http-advertise"},
		{"IPv6 loopback", "[fd00::5]:7946", []cluster.Advertised{raft("[::1]:9101")}, "--raft-advertise"},
		{"localhost name", "10.0.0.5:7946", []cluster.Advertised{http("localhost:9000")}, "--http-advertise"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := cluster.CheckAdvertised(tc.gossip, tc.addrs...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want a refusal naming %s", err, tc.want)
			}
		})
	}
}
