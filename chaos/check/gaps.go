package check

import (
	"sort"
	"time"

	"github.com/stokehq/stoke/chaos/history"
)

// MaxGap is the longest stretch within [from, to] in which no operation
// that keep selects was acknowledged: the unavailability clients saw. The
// stretches before the first and after the last acknowledgement count.
func MaxGap(ops []history.Op, from, to time.Duration, keep func(history.Op) bool) time.Duration {
	var acks []time.Duration
	for _, op := range ops {
		if op.Outcome == history.OK && op.Return >= from && op.Return <= to && (keep == nil || keep(op)) {
			acks = append(acks, op.Return)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	prev, gap := from, time.Duration(0)
	for _, t := range append(acks, to) {
		gap = max(gap, t-prev)
		prev = t
	}
	return gap
}

// IsWrite selects acknowledged-write kinds of the control plane.
func IsWrite(op history.Op) bool { return isControl(op) && !isRead(op.Kind) }
