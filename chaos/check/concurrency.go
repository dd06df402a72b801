package check

import (
	"sort"

	"github.com/stokehq/stoke/chaos/history"
)

// Interval is one execution as the function saw it, in Unix nanoseconds.
type Interval struct {
	Start, End int64
	// Op is the recorded operation that reported it.
	Op int
}

// MaxOverlap returns the largest number of intervals running at one
// instant and an instant where it was reached. Intervals are half-open: one
// that ends exactly when another starts does not overlap it.
func MaxOverlap(intervals []Interval) (maxRunning int, at int64) {
	type edge struct {
		t     int64
		delta int
	}
	edges := make([]edge, 0, 2*len(intervals))
	for _, iv := range intervals {
		edges = append(edges, edge{iv.Start, +1}, edge{iv.End, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].t != edges[j].t {
			return edges[i].t < edges[j].t
		}
		return edges[i].delta < edges[j].delta // ends before starts at the same instant
	})
	running := 0
	for _, e := range edges {
		running += e.delta
		if running > maxRunning {
			maxRunning, at = running, e.t
		}
	}
	return maxRunning, at
}

// Executions extracts the executions the function reported from the
// acknowledged sync invocations among ops.
func Executions(ops []history.Op) []Interval {
	var out []Interval
	for _, op := range ops {
		if op.Kind != history.Invoke || op.Outcome != history.OK {
			continue
		}
		o, ok := op.Output.(history.InvokeOutput)
		if !ok || o.StartUnixNano == 0 || o.EndUnixNano < o.StartUnixNano {
			continue
		}
		out = append(out, Interval{Start: o.StartUnixNano, End: o.EndUnixNano, Op: op.ID})
	}
	return out
}
