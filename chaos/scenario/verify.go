package scenario

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
	"github.com/stokehq/stoke/chaos/history"
)

// readableWithin is issue 9's bound: every acknowledged write readable on
// every surviving node within 10 s of the load stopping.
const readableWithin = 10 * time.Second

// finalReadRetry paces the retries of a final read without a definite
// answer: small against readableWithin.
const finalReadRetry = 50 * time.Millisecond

// finalReads reads every function's $LATEST, versions and aliases on node
// n through c (recorded, so the linearizability check covers them),
// retrying reads without a definite answer until ctx ends. It returns
// what n serves.
func finalReads(ctx context.Context, c *client.Control, fns []string, maxVersion int) (map[string]check.FunctionState, error) {
	out := map[string]check.FunctionState{}
	// A read refused at once (connection refused, 403 before the key
	// replicates, 429) is retried after a pause, not in a busy loop that
	// would record thousands of operations against the node.
	definite := func(read func() history.Op) (op history.Op, err error) {
		err = harness.Poll(ctx, finalReadRetry, func() error {
			if op = read(); op.Outcome == history.OK || op.Error == history.ErrNotFound {
				return nil
			}
			return fmt.Errorf("%s %s on %s: no definite answer (last: %s %s)", op.Kind, op.Key, c.Node(), op.Outcome, op.Error)
		})
		return op, err
	}
	for _, fn := range fns {
		st := check.FunctionState{Versions: map[string]bool{}, Aliases: map[string]string{}}
		op, err := definite(func() history.Op { return c.Get(ctx, fn, "") })
		if err != nil {
			return nil, err
		}
		if op.Outcome == history.OK {
			st.Exists = true
			st.Description = op.Output.(history.ControlOutput).Description
			for v := 1; v <= maxVersion; v++ {
				q := strconv.Itoa(v)
				op, err := definite(func() history.Op { return c.Get(ctx, fn, q) })
				if err != nil {
					return nil, err
				}
				st.Versions[q] = op.Outcome == history.OK
			}
			for _, a := range aliasNames {
				op, err := definite(func() history.Op { return c.GetAlias(ctx, fn, a) })
				if err != nil {
					return nil, err
				}
				if op.Outcome == history.OK {
					st.Aliases[a] = op.Output.(history.ControlOutput).Version
				}
			}
		}
		out[fn] = st
	}
	return out, nil
}

// maxVersion is the highest version any publish may have created: the
// highest acknowledged plus one per publish of unknown outcome.
func maxVersion(ops []history.Op) int {
	high, unknown := 0, 0
	for _, op := range ops {
		if op.Kind != history.PublishVersion {
			continue
		}
		switch op.Outcome {
		case history.OK:
			v, _ := strconv.Atoi(op.Output.(history.ControlOutput).Version)
			high = max(high, v)
		case history.Unknown:
			unknown++
		}
	}
	return min(high+unknown, 64)
}

// waitConverged polls every node's state hash until all agree.
func waitConverged(ctx context.Context, admin *client.Admin, nodes []*harness.Node) error {
	return harness.Poll(ctx, 200*time.Millisecond, func() error {
		var states []check.NodeState
		for _, n := range nodes {
			st, err := admin.StateHash(ctx, n.Endpoint())
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			states = append(states, st)
		}
		return check.Converged(states)
	})
}

// verdict holds what a control-plane scenario checks after its load.
type verdict struct {
	env       *Env
	c         *harness.Cluster
	fns       []string
	load      []history.Op // the load's operations, before final reads
	loadFrom  time.Duration
	loadUntil time.Duration
}

// judge runs the checks every control-plane scenario shares and fills s:
// final reads on each survivor within readableWithin, no acknowledged
// write lost there, the whole history linearizable. It returns the final
// states it read.
func (v *verdict) judge(s *check.Summary, survivors []*harness.Node) {
	s.Ops = len(v.load)
	for _, op := range v.load {
		if op.Outcome == history.OK {
			s.Acked++
		}
	}
	s.Duplicates = -1
	s.MaxUnavailable = check.MaxGap(v.load, v.loadFrom, v.loadUntil, check.IsWrite)

	final := map[string]map[string]check.FunctionState{}
	mv := maxVersion(v.load)
	for i, n := range survivors {
		ctx, cancel := context.WithTimeout(context.Background(), readableWithin)
		st, err := finalReads(ctx, v.env.Control(1000+i, n), v.fns, mv)
		cancel()
		if err != nil {
			s.Failf("acknowledged writes not readable on %s within %v: %v", n, readableWithin, err)
			continue
		}
		final[n.ID] = st
	}
	lost := check.LostWrites(v.load, final)
	ids := map[int]bool{}
	for _, l := range lost {
		ids[l.Op.ID] = true
		if len(ids) <= 5 {
			s.Failf("%s", l)
		}
	}
	s.Lost = len(ids)

	lin := check.Linearizable(v.env.Rec.Ops(), 2*time.Minute, v.c.ArtifactDir())
	if !lin.OK() {
		s.Failf("history not linearizable: %s", lin)
	}
}

// errorCounts tallies the outcomes of ops by error, for the log.
func errorCounts(ops []history.Op) string {
	counts := map[string]int{}
	for _, op := range ops {
		if op.Outcome != history.OK {
			counts[op.Outcome.String()+":"+op.Error]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for _, k := range keys {
		out += fmt.Sprintf(" %s×%d", k, counts[k])
	}
	return out
}
