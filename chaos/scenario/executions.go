package scenario

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/chaos/client"
)

// execution is one run of the chaos function as the function itself
// logged it (client.ExecLine), whether or not its answer reached anyone.
type execution struct {
	Nonce, Node, Sandbox, Marker string
	Start, End                   int64 // Unix ns, the sandbox's clock
}

var execLine = regexp.MustCompile(client.ExecLine)

// executions reads every run of function fn from every node's function
// logs (killed and cut-off nodes included: their data dirs stay).
func (e *Env) executions(fn string) ([]execution, error) {
	ms, err := e.c.FunctionLogSubmatches(execLine, fn)
	if err != nil {
		return nil, err
	}
	out := make([]execution, 0, len(ms))
	for _, m := range ms {
		if len(m.Groups) != 5 {
			continue
		}
		start, err1 := strconv.ParseInt(m.Groups[1], 10, 64)
		end, err2 := strconv.ParseInt(m.Groups[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad execution line on %s: %v", m.Node, m.Groups)
		}
		out = append(out, execution{Nonce: m.Groups[0], Node: m.Node, Start: start, End: end, Sandbox: m.Groups[3], Marker: m.Groups[4]})
	}
	return out, nil
}

// loadNonces keeps the nonces of the scenario's own load (its seed's
// prefix), leaving out warm-ups and probes.
func (e *Env) loadNonces(runs []execution) []string {
	prefix := fmt.Sprintf("s%d-", e.Seed)
	var out []string
	for _, r := range runs {
		if strings.HasPrefix(r.Nonce, prefix) {
			out = append(out, r.Nonce)
		}
	}
	return out
}

// intervals turns runs into the checker's execution intervals.
func intervals(runs []execution) []check.Interval {
	out := make([]check.Interval, 0, len(runs))
	for _, r := range runs {
		out = append(out, check.Interval{Start: r.Start, End: r.End, Op: -1})
	}
	return out
}

// checkRanOnce fails s for every request of the load that the function
// ran more than once: a synchronous invocation runs at most once, whatever
// fails (an answer lost with its node is an error, never a retry
// elsewhere). It returns how many ran twice or more.
func (e *Env) checkRanOnce(s *check.Summary, fn string) int {
	runs, err := e.executions(fn)
	if err != nil {
		s.Failf("reading the function's executions: %v", err)
		return 0
	}
	twice := check.RanTwice(e.loadNonces(runs))
	n := 0
	for nonce, times := range twice {
		if n++; n <= 3 {
			s.Failf("request %s ran %d times", nonce, times)
		}
	}
	return len(twice)
}
