package node

import (
	"encoding/hex"
	"net/http"
	"testing"
)

func TestStateHashEndpoint(t *testing.T) {
	a := startTestAgent(t)
	admin, err := ReadCredentials(a.cfg.credentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	var got StateHash
	if err := (&adminCaller{a: a, creds: admin}).call("GET", "/stoke/v1/cluster/state-hash", nil, &got); err != nil {
		t.Fatal(err)
	}
	sum := a.raft.FSM().Hash()
	if got.Node != a.NodeID() || got.AppliedIndex != a.raft.Store().AppliedIndex() || got.Hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("state-hash = %+v; replica is at %d with hash %x", got, a.raft.Store().AppliedIndex(), sum)
	}

	resp, err := http.Get("http://" + a.HTTPAddr() + "/stoke/v1/cluster/state-hash")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned state-hash request: status %d, want 403", resp.StatusCode)
	}
}
