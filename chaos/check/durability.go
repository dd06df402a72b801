package check

import (
	"fmt"

	"github.com/stokehq/stoke/chaos/history"
)

// FunctionState is one function as final reads on one node saw it.
type FunctionState struct {
	Exists      bool
	Description string
	// Versions holds the published versions that answered.
	Versions map[string]bool
	// Aliases maps every alias that answered to its version.
	Aliases map[string]string
}

// LostWrite is an acknowledged write whose effect a node's final state
// lacks although no other operation could have undone it.
type LostWrite struct {
	Node string
	Op   history.Op
}

func (l LostWrite) String() string {
	in, _ := l.Op.Input.(history.ControlInput)
	return fmt.Sprintf("node %s lost op %d %s(%s %+v) acknowledged by %s at %v", l.Node, l.Op.ID, l.Op.Kind, l.Op.Key, in, l.Op.Node, l.Op.Return)
}

// mayFollow reports whether o may take effect after w: o did not fail, and
// it either has an unknown outcome (it may still take effect at any time)
// or returned no earlier than w was called.
func mayFollow(o, w history.Op) bool {
	return o.ID != w.ID && o.Key == w.Key && o.Outcome != history.Fail &&
		(o.Outcome == history.Unknown || o.Return >= w.Call)
}

// LostWrites returns, per node, the acknowledged control-plane writes in ops
// whose effect is missing from final[node][function] when nothing that may
// have happened after them explains the difference. It is a cheaper,
// more specific sibling of Linearizable: it names the lost write.
//
// final must hold every function the writes touched, for every node checked.
func LostWrites(ops []history.Op, final map[string]map[string]FunctionState) []LostWrite {
	byKey := map[string][]history.Op{}
	for _, op := range ops {
		if isControl(op) && !isRead(op.Kind) {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	var lost []LostWrite
	for node, fns := range final {
		for key, writes := range byKey {
			st := fns[key]
			for _, w := range writes {
				if w.Outcome == history.OK && !explained(w, st, writes) {
					lost = append(lost, LostWrite{Node: node, Op: w})
				}
			}
		}
	}
	return lost
}

// explained reports whether final state st is consistent with acknowledged
// write w given the other writes to the same function.
func explained(w history.Op, st FunctionState, writes []history.Op) bool {
	in, _ := w.Input.(history.ControlInput)
	out, _ := w.Output.(history.ControlOutput)
	later := func(kinds ...string) []history.Op {
		var res []history.Op
		for _, o := range writes {
			if !mayFollow(o, w) {
				continue
			}
			for _, k := range kinds {
				if o.Kind == k {
					res = append(res, o)
				}
			}
		}
		return res
	}
	deletedLater := len(later(history.DeleteFunction)) > 0
	switch w.Kind {
	case history.CreateFunction:
		return st.Exists || deletedLater
	case history.DeleteFunction:
		return !st.Exists || len(later(history.CreateFunction)) > 0
	case history.UpdateConfig:
		if !st.Exists {
			return deletedLater
		}
		if st.Description == in.Description {
			return true
		}
		for _, o := range later(history.UpdateConfig, history.CreateFunction) {
			if oin, _ := o.Input.(history.ControlInput); oin.Description == st.Description {
				return true
			}
		}
		return false
	case history.PublishVersion:
		return st.Versions[out.Version] || deletedLater
	case history.CreateAlias:
		return st.Aliases[in.Alias] == in.Version || deletedLater
	}
	return true
}
