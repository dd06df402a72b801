package sim

import (
	"cmp"
	"fmt"
	"slices"
)

// Function is one function version of a trace.
type Function struct {
	// Key is the function version identity placement hashes, shaped like
	// Stoke's "account/function/version".
	Key string
	// MemoryMB is the memory a sandbox of the function holds.
	MemoryMB int
	// Duration is the distribution of its invocations' execution times.
	Duration Quantiles
}

// Quantiles is a duration distribution given by its quantile function at
// a few probabilities, interpolated linearly between them (the form the
// Azure trace publishes: minimum, 1st, 25th, 50th, 75th, 99th percentile
// and maximum).
type Quantiles struct {
	// P are probabilities, ascending from 0 to 1.
	P []float64
	// Millis[i] is the duration in milliseconds at probability P[i];
	// non-decreasing.
	Millis []float64
}

// At returns the duration in milliseconds at probability u in [0, 1),
// at least 1.
func (q Quantiles) At(u float64) int64 {
	if len(q.P) == 0 {
		return 1
	}
	i, _ := slices.BinarySearch(q.P, u)
	var ms float64
	switch {
	case i == 0:
		ms = q.Millis[0]
	case i == len(q.P):
		ms = q.Millis[len(q.Millis)-1]
	default:
		f := (u - q.P[i-1]) / (q.P[i] - q.P[i-1])
		ms = q.Millis[i-1] + f*(q.Millis[i]-q.Millis[i-1])
	}
	return max(int64(ms), 1)
}

// Trace is a workload: per-minute invocation counts of each function.
type Trace struct {
	// Name labels the trace in reports.
	Name string
	// Functions are the trace's functions; Counts is indexed alike.
	Functions []Function
	// Counts[f][m] is how many times function f is invoked in minute m.
	// All rows have the same length, the trace's length in minutes.
	Counts [][]int32
}

// Minutes is the trace's length.
func (t *Trace) Minutes() int {
	if len(t.Counts) == 0 {
		return 0
	}
	return len(t.Counts[0])
}

// Window returns the minutes [from, from+n) of t, sharing its functions.
func (t *Trace) Window(from, n int) (*Trace, error) {
	if from < 0 || n <= 0 || from+n > t.Minutes() {
		return nil, fmt.Errorf("sim: window [%d, %d) outside the %d minutes of trace %s", from, from+n, t.Minutes(), t.Name)
	}
	w := &Trace{Name: t.Name, Functions: t.Functions, Counts: make([][]int32, len(t.Counts))}
	for f, row := range t.Counts {
		w.Counts[f] = row[from : from+n]
	}
	return w, nil
}

// Total is the number of invocations in the trace.
func (t *Trace) Total() int64 {
	var n int64
	for _, row := range t.Counts {
		for _, c := range row {
			n += int64(c)
		}
	}
	return n
}

// invocation is one arrival of a replay.
type invocation struct {
	at       int64 // ms since the start of the replay
	fn       int32
	duration int64 // ms
}

// minute expands minute m of t into invocations sorted by arrival. Each
// of a function's c invocations in the minute arrives at a uniform
// offset within it and takes a duration drawn from the function's
// distribution; both draws hash (seed, function, minute, index), so the
// expansion is the same on every run and independent of other functions.
func (t *Trace) minute(m int, seed uint64, buf []invocation) []invocation {
	buf = buf[:0]
	base := int64(m) * 60_000
	for f, row := range t.Counts {
		c := int(row[m])
		for i := range c {
			h := mix(mix(mix(seed^uint64(f))^uint64(m)) ^ uint64(i))
			buf = append(buf, invocation{
				at:       base + int64(unit(h)*60_000),
				fn:       int32(f),
				duration: t.Functions[f].Duration.At(unit(mix(h))),
			})
		}
	}
	slices.SortFunc(buf, func(a, b invocation) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.fn, b.fn)
	})
	return buf
}

// Resize returns a trace of exactly n functions built from t, so that a
// workload can grow with the cluster it is replayed on. With n at most
// len(t.Functions) it keeps the first n functions (the Azure samples and
// Synthetic list functions in no particular order, so this is a random
// subset). With more, it appends copies of t's functions as other
// accounts would run them: keys prefixed "copy<i>-", the same per-minute
// counts, and, because arrivals and durations are drawn per function
// index, their own arrival times and durations within each minute.
func (t *Trace) Resize(n int) *Trace {
	out := &Trace{Name: t.Name}
	for i := range n {
		f := i % len(t.Functions)
		fn := t.Functions[f]
		if copyNo := i / len(t.Functions); copyNo > 0 {
			fn.Key = fmt.Sprintf("copy%d-%s", copyNo, fn.Key)
		}
		out.Functions = append(out.Functions, fn)
		out.Counts = append(out.Counts, t.Counts[f])
	}
	return out
}
