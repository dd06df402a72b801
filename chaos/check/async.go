package check

import (
	"sort"

	"github.com/stokehq/stoke/chaos/history"
)

// DeliveryReport is the verdict on async invocations: Lambda promises at
// least once, so any Lost is a failure and Duplicates are only counted.
type DeliveryReport struct {
	// Acked is how many events the cluster answered 202 for.
	Acked int
	// Delivered is how many distinct events the function saw.
	Delivered int
	// Lost lists acknowledged events the function never saw.
	Lost []string
	// Duplicates is how many deliveries beyond the first there were.
	Duplicates int
	// Phantoms lists events the function saw that no client sent.
	Phantoms []string
}

// OK reports whether nothing was lost and nothing invented.
func (r DeliveryReport) OK() bool { return len(r.Lost) == 0 && len(r.Phantoms) == 0 }

// Deliveries compares the async invocations among ops with the nonces the
// function recorded, one entry per execution (so a nonce seen twice was
// delivered twice). Events with an unknown or failed outcome may or may not
// be delivered; they count as neither lost nor phantom.
func Deliveries(ops []history.Op, delivered []string) DeliveryReport {
	sent := map[string]history.Outcome{}
	for _, op := range ops {
		if op.Kind != history.InvokeAsync {
			continue
		}
		in, _ := op.Input.(history.InvokeInput)
		sent[in.Nonce] = op.Outcome
	}
	seen := map[string]int{}
	for _, n := range delivered {
		seen[n]++
	}
	var r DeliveryReport
	for nonce, outcome := range sent {
		if outcome == history.OK {
			r.Acked++
			if seen[nonce] == 0 {
				r.Lost = append(r.Lost, nonce)
			}
		}
	}
	for nonce, n := range seen {
		if _, ok := sent[nonce]; !ok {
			r.Phantoms = append(r.Phantoms, nonce)
			continue
		}
		r.Delivered++
		r.Duplicates += n - 1
	}
	sort.Strings(r.Lost)
	sort.Strings(r.Phantoms)
	return r
}
