package node

import (
	"encoding/hex"
	"net/http"
)

// StateHash is what GET /stoke/v1/cluster/state-hash reports: the Raft
// index this replica has applied and a digest of its replicated state at
// that index. Two replicas at the same index must report the same hash;
// chaos tests compare them across nodes after healing a fault.
type StateHash struct {
	Node         string `json:"node"`
	AppliedIndex uint64 `json:"applied_index"`
	Hash         string `json:"hash"`
}

// LocalStateHash digests this replica's state. The applied index is read
// before and after hashing and the pair is retried until they agree, so
// the hash belongs to the index reported (the FSM may apply concurrently).
func (a *Agent) LocalStateHash() StateHash {
	store := a.raft.Store()
	for {
		before := store.AppliedIndex()
		sum := a.raft.FSM().Hash()
		if store.AppliedIndex() == before {
			return StateHash{Node: a.nodeID, AppliedIndex: before, Hash: hex.EncodeToString(sum[:])}
		}
	}
}

func (a *Agent) handleStateHash(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.LocalStateHash())
}
