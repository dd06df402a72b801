package check

import (
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/stokehq/stoke/chaos/history"
)

// fnState is the model's state of one function: the sequential
// specification the cluster must be equivalent to. Values are never
// mutated; every step returns a new one.
type fnState struct {
	exists bool
	desc   string
	// versions[i] is the description $LATEST had when version i+1 was
	// published (the only configuration field the workload changes).
	versions []string
	aliases  map[string]string // alias name → version
}

// cpIn and cpOut are porcupine's input and output of a control-plane op.
type cpIn struct {
	kind string
	in   history.ControlInput
}

type cpOut struct {
	unknown bool
	err     string // error code of a definitive refusal, "" when acknowledged
	out     history.ControlOutput
}

// apply is the sequential specification: the state after op and the answer
// the cluster must give. It mirrors fsm's rules for what the workload uses:
// a duplicate create conflicts; publishing unchanged $LATEST returns the
// newest version instead of a new one; an alias needs an existing version
// and a free name; delete removes versions and aliases with the function.
func apply(s fnState, op cpIn) (fnState, cpOut) {
	notFound := cpOut{err: history.ErrNotFound}
	switch op.kind {
	case history.CreateFunction:
		if s.exists {
			return s, cpOut{err: history.ErrConflict}
		}
		return fnState{exists: true, desc: op.in.Description}, cpOut{}
	case history.UpdateConfig:
		if !s.exists {
			return s, notFound
		}
		n := s
		n.desc = op.in.Description
		return n, cpOut{}
	case history.PublishVersion:
		if !s.exists {
			return s, notFound
		}
		// The answer is the version's configuration: its number and the
		// description frozen with it. Checking the description here, not
		// only when a later read sees it, keeps the search from backtracking
		// across hundreds of operations to place each publish.
		if k := len(s.versions); k > 0 && s.versions[k-1] == s.desc {
			return s, cpOut{out: history.ControlOutput{Version: strconv.Itoa(k), Description: s.desc}}
		}
		n := s
		n.versions = append(append([]string(nil), s.versions...), s.desc)
		return n, cpOut{out: history.ControlOutput{Version: strconv.Itoa(len(n.versions)), Description: s.desc}}
	case history.CreateAlias:
		if !s.exists {
			return s, notFound
		}
		if _, ok := s.aliases[op.in.Alias]; ok {
			return s, cpOut{err: history.ErrConflict}
		}
		if op.in.Version != "$LATEST" {
			v, err := strconv.Atoi(op.in.Version)
			if err != nil || v < 1 || v > len(s.versions) {
				return s, notFound
			}
		}
		n := s
		n.aliases = maps.Clone(s.aliases)
		if n.aliases == nil {
			n.aliases = map[string]string{}
		}
		n.aliases[op.in.Alias] = op.in.Version
		return n, cpOut{}
	case history.DeleteFunction:
		if !s.exists {
			return s, notFound
		}
		return fnState{}, cpOut{}
	case history.GetFunction:
		if !s.exists {
			return s, notFound
		}
		if op.in.Qualifier == "" || op.in.Qualifier == "$LATEST" {
			return s, cpOut{out: history.ControlOutput{Description: s.desc}}
		}
		v, err := strconv.Atoi(op.in.Qualifier)
		if err != nil || v < 1 || v > len(s.versions) {
			return s, notFound
		}
		return s, cpOut{out: history.ControlOutput{Description: s.versions[v-1]}}
	case history.GetAlias:
		if !s.exists {
			return s, notFound
		}
		v, ok := s.aliases[op.in.Alias]
		if !ok {
			return s, notFound
		}
		return s, cpOut{out: history.ControlOutput{Version: v}}
	}
	panic(fmt.Sprintf("check: control-plane model has no rule for %q", op.kind))
}

func (s fnState) equal(o fnState) bool {
	return s.exists == o.exists && s.desc == o.desc && slices.Equal(s.versions, o.versions) && maps.Equal(s.aliases, o.aliases)
}

func (s fnState) String() string {
	if !s.exists {
		return "absent"
	}
	keys := make([]string, 0, len(s.aliases))
	for k := range s.aliases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var al []string
	for _, k := range keys {
		al = append(al, k+"→"+s.aliases[k])
	}
	return fmt.Sprintf("desc=%q versions=%q aliases=[%s]", s.desc, s.versions, strings.Join(al, " "))
}

// controlModel is the porcupine model, partitioned by function.
var controlModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Metadata.(history.Op).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return fnState{} },
	Step: func(state, input, output any) (bool, any) {
		next, want := apply(state.(fnState), input.(cpIn))
		got := output.(cpOut)
		if got.unknown {
			// The op may have happened; if it did, this is its effect.
			return true, next
		}
		return got.err == want.err && got.out == want.out, next
	},
	Equal: func(a, b any) bool { return a.(fnState).equal(b.(fnState)) },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		fmt.Fprint(h, state.(fnState).String())
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(cpIn), output.(cpOut)
		arg := in.in.Description + in.in.Qualifier + in.in.Alias
		if in.in.Version != "" {
			arg += "→" + in.in.Version
		}
		res := "ok"
		switch {
		case out.unknown:
			res = "?"
		case out.err != "":
			res = out.err
		case out.out.Description != "" || out.out.Version != "":
			res = out.out.Description + out.out.Version
		}
		return fmt.Sprintf("%s(%s) → %s", in.kind, arg, res)
	},
	DescribeState: func(state any) string { return state.(fnState).String() },
}

// isControl reports whether op is a control-plane operation the model knows.
func isControl(op history.Op) bool {
	switch op.Kind {
	case history.CreateFunction, history.UpdateConfig, history.PublishVersion, history.CreateAlias,
		history.DeleteFunction, history.GetFunction, history.GetAlias:
		return true
	}
	return false
}

func isRead(kind string) bool { return kind == history.GetFunction || kind == history.GetAlias }

// modelErrors are the refusals the model predicts. Other refusals (403
// while a replica lacks the access key, 429, a refused connection) say
// nothing about the function's state and had no effect, so they are left
// out of the history like reads that never got an answer.
var modelErrors = map[string]bool{history.ErrNotFound: true, history.ErrConflict: true}

// toPorcupine converts recorded control-plane ops. Reads without a definite
// answer and refusals the model does not predict are dropped (they changed
// nothing and claim nothing); writes with an unknown outcome stay pending
// for ever.
func toPorcupine(ops []history.Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		if !isControl(op) || (op.Outcome == history.Unknown && isRead(op.Kind)) ||
			(op.Outcome == history.Fail && !modelErrors[op.Error]) {
			continue
		}
		in, _ := op.Input.(history.ControlInput)
		res := cpOut{}
		ret := op.Return
		switch op.Outcome {
		case history.Unknown:
			res.unknown, ret = true, history.Never
		case history.Fail:
			res.err = op.Error
		case history.OK:
			res.out, _ = op.Output.(history.ControlOutput)
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: cpIn{kind: op.Kind, in: in},
			Call: int64(op.Call), Output: res, Return: int64(ret), Metadata: op})
	}
	return out
}

// LinearizabilityResult is the verdict on a control-plane history.
type LinearizabilityResult struct {
	// Ops is how many operations were checked.
	Ops int
	// Result is porcupine's verdict: Ok, Illegal or Unknown (timed out).
	Result porcupine.CheckResult
	// Visualization is the HTML file showing the longest linearizable
	// prefix of each partition, written when the history is not Ok.
	Visualization string
}

// OK reports whether the history was proven linearizable.
func (r LinearizabilityResult) OK() bool { return r.Result == porcupine.Ok }

func (r LinearizabilityResult) String() string {
	s := fmt.Sprintf("%d control-plane ops: %s", r.Ops, r.Result)
	if r.Visualization != "" {
		s += " (see " + r.Visualization + ")"
	}
	return s
}

// Linearizable checks the control-plane operations among ops against the
// function model, one partition per function, giving up after timeout
// (Result Unknown). When the verdict is not Ok and artifactDir is not
// empty, porcupine's visualization is written there.
func Linearizable(ops []history.Op, timeout time.Duration, artifactDir string) LinearizabilityResult {
	h := toPorcupine(ops)
	res, info := porcupine.CheckOperationsVerbose(controlModel, h, timeout)
	out := LinearizabilityResult{Ops: len(h), Result: res}
	if res != porcupine.Ok && artifactDir != "" {
		path := filepath.Join(artifactDir, "linearizability.html")
		if err := os.MkdirAll(artifactDir, 0o755); err == nil && porcupine.VisualizePath(controlModel, info, path) == nil {
			out.Visualization = path
		}
	}
	return out
}
