package check

import (
	"fmt"
	"strings"
)

// NodeState is what one node reported about its replica of the Raft state.
type NodeState struct {
	Node         string
	AppliedIndex uint64
	Hash         string
}

// Converged returns nil when every node reports the same applied index and
// state hash, and otherwise an error listing what each reported.
func Converged(states []NodeState) error {
	if len(states) == 0 {
		return fmt.Errorf("no node reported its state")
	}
	same := true
	for _, s := range states[1:] {
		if s.Hash != states[0].Hash || s.AppliedIndex != states[0].AppliedIndex {
			same = false
		}
	}
	if same {
		return nil
	}
	var b strings.Builder
	for _, s := range states {
		short := s.Hash
		if len(short) > 12 {
			short = short[:12]
		}
		fmt.Fprintf(&b, " %s@%d=%s", s.Node, s.AppliedIndex, short)
	}
	return fmt.Errorf("replicas differ:%s", b.String())
}
