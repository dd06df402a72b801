package cluster

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestReconcilerDoesNotAddLoopbackMember: the leader refuses a member that
// gossips on a reachable address but advertises loopback Raft, before it
// touches Raft or the node records (the Reconciler here has neither).
func TestReconcilerDoesNotAddLoopbackMember(t *testing.T) {
	r := &Reconciler{log: slog.New(slog.DiscardHandler)}
	m := Member{NodeMeta: NodeMeta{ID: "w1", Role: RoleWorker, GossipAddr: "10.0.0.5:7946",
		RaftAddr: "127.0.0.1:9101", GRPCAddr: "10.0.0.5:9100", HTTPAddr: "10.0.0.5:9000"}, Status: StatusAlive}
	err := r.ensureMember(context.Background(), m, map[string]Server{}, nil)
	if err == nil || !strings.Contains(err.Error(), "not adding w1") || !strings.Contains(err.Error(), "--raft-advertise") {
		t.Fatalf("ensureMember of a loopback member: %v", err)
	}
}
