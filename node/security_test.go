package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// writeTLS creates a CA and a certificate for node id (127.0.0.1) in dir.
func writeTLS(t *testing.T, dir string, ids ...string) (caFile string, certs map[string][2]string) {
	t.Helper()
	caPEM, caKey, err := cluster.CreateCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := cluster.WritePEM(caFile, caPEM, false); err != nil {
		t.Fatal(err)
	}
	certs = map[string][2]string{}
	for _, id := range ids {
		cert, key, err := cluster.CreateCert(caPEM, caKey, cluster.CertOptions{NodeID: id, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		cf, kf := filepath.Join(dir, id+".pem"), filepath.Join(dir, id+"-key.pem")
		if err := cluster.WritePEM(cf, cert, false); err != nil {
			t.Fatal(err)
		}
		if err := cluster.WritePEM(kf, key, true); err != nil {
			t.Fatal(err)
		}
		certs[id] = [2]string{cf, kf}
	}
	return caFile, certs
}

func withTLS(cfg Config, ca string, pair [2]string) Config {
	cfg.Cluster.TLSCAFile, cfg.Cluster.TLSCertFile, cfg.Cluster.TLSKeyFile = ca, pair[0], pair[1]
	return cfg
}

// TestNodesWithAnotherCAOrKeyCannotJoin: a node whose certificate comes
// from another CA gossips (it has the cluster key) but never enters Raft
// or the node records; a node with another cluster key cannot even gossip.
func TestNodesWithAnotherCAOrKeyCannotJoin(t *testing.T) {
	c := newTestCluster(t)
	caA, certsA := writeTLS(t, t.TempDir(), "a1", "a2")
	caB, certsB := writeTLS(t, t.TempDir(), "b1")

	cfg := withTLS(c.clusterConfig("a1", true), caA, certsA["a1"])
	cfg.Bootstrap = true
	a1 := c.start(cfg)
	a2 := c.start(withTLS(c.clusterConfig("a2", false, a1.GossipAddr()), caA, certsA["a2"]))
	b1 := c.start(withTLS(c.clusterConfig("b1", false, a1.GossipAddr()), caB, certsB["b1"]))

	// The same CA joins; the other CA's node is seen in gossip only.
	clustertest.WaitFor(t, 20*time.Second, func() error {
		if _, non := raftIDs(t, a1); !slices.Contains(non, "a2") {
			return fmt.Errorf("a2 not in raft yet: %v", non)
		}
		if !a1.Gossip().IsAlive("b1") {
			return errors.New("b1 not in gossip yet")
		}
		return nil
	})
	passes := a1.reconciler.Passes()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		if a1.reconciler.Passes() < passes+3 {
			return errors.New("waiting for reconcile passes")
		}
		return nil
	})
	if _, non := raftIDs(t, a1); slices.Contains(non, "b1") {
		t.Fatal("a node with another CA entered the raft configuration")
	}
	if a1.Metadata().View().Node("b1") != nil || adminAccount(b1) != "" {
		t.Fatal("a node with another CA got a node record or a replica")
	}
	// a2 is in the configuration; its replica catches up in its own time.
	clustertest.WaitFor(t, 20*time.Second, func() error {
		if adminAccount(a2) == "" {
			return errors.New("a2 (same CA) has no replica yet")
		}
		return nil
	})

	// Another cluster key: gossip itself refuses.
	other := newTestCluster(t)
	x := other.start(other.clusterConfig("x1", false))
	if _, err := x.Gossip().Join([]string{a1.GossipAddr()}); err == nil {
		t.Fatal("a node with another cluster key joined the gossip")
	}
	if a1.Gossip().IsAlive("x1") {
		t.Fatal("x1 leaked into the cluster's gossip")
	}

	t.Run("unauthenticated gRPC is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		call := func(opts ...grpc.DialOption) error {
			cc, err := grpc.NewClient(a1.GRPCAddr(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			_, err = rpcpb.NewClusterClient(cc).Status(ctx, &rpcpb.StatusRequest{})
			return err
		}
		if err := call(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
			t.Fatal("a plaintext call succeeded")
		}
		// The right CA's certificate but no cluster token.
		pair, err := tls.LoadX509KeyPair(certsA["a2"][0], certsA["a2"][1])
		if err != nil {
			t.Fatal(err)
		}
		sec, err := cluster.NewSecurity(cluster.SecurityConfig{NodeID: "probe", CAFile: caA,
			CertFile: certsA["a2"][0], KeyFile: certsA["a2"][1], Token: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		tc := sec.ClientTLS(a1.GRPCAddr())
		tc.Certificates = []tls.Certificate{pair}
		err = call(grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call without the token: %v, want Unauthenticated", err)
		}
		// A certificate from another CA: the handshake fails.
		secB, err := cluster.NewSecurity(cluster.SecurityConfig{NodeID: "probe", CAFile: caB,
			CertFile: certsB["b1"][0], KeyFile: certsB["b1"][1], Token: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		if err := call(grpc.WithTransportCredentials(credentials.NewTLS(secB.ClientTLS(a1.GRPCAddr())))); err == nil {
			t.Fatal("a call with another CA's certificate succeeded")
		}
		// The Raft port drops a peer that does not authenticate.
		conn, err := net.Dial("tcp", a1.raft.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("plaintext raft rpc"))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 64)); err == nil && n > 0 {
			buf := make([]byte, 64)
			_, err = conn.Read(buf)
			if err == nil {
				t.Fatal("the Raft port kept talking to an unauthenticated peer")
			}
		}
	})
}
