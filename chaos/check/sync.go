package check

import (
	"fmt"
	"time"

	"github.com/stokehq/stoke/chaos/history"
)

// Bucket is the success rate of the invocations called within one time
// bucket of the run.
type Bucket struct {
	From, To   time.Duration
	Calls, OKs int
	// Throttled counts calls refused with TooManyRequestsException.
	Throttled int
}

// Rate is the fraction of calls that succeeded (1 when there were none).
func (b Bucket) Rate() float64 {
	if b.Calls == 0 {
		return 1
	}
	return float64(b.OKs) / float64(b.Calls)
}

// SyncReport is the verdict on synchronous invocations.
type SyncReport struct {
	Calls, OKs, Failed, Unknown int
	// Throttled counts refusals for concurrency (429); they are also in
	// Failed.
	Throttled int
	// Wrong lists acknowledged invocations whose result was not their
	// own: never allowed, whatever the fault.
	Wrong []history.Op
	// Buckets is the success rate over time.
	Buckets []Bucket
}

// OK reports whether no invocation got a wrong result.
func (r SyncReport) OK() bool { return len(r.Wrong) == 0 }

// ErrThrottled is the exception of a refusal for concurrency.
const ErrThrottled = "TooManyRequestsException"

// SyncInvocations judges the Invoke operations among ops. An invocation
// succeeded when the cluster answered and the function did not fail; its
// result is wrong when the nonce the function echoed is not the one sent.
func SyncInvocations(ops []history.Op, bucket time.Duration) SyncReport {
	var r SyncReport
	byIndex := map[int]*Bucket{}
	last := -1
	for _, op := range ops {
		if op.Kind != history.Invoke {
			continue
		}
		r.Calls++
		i := int(op.Call / bucket)
		b := byIndex[i]
		if b == nil {
			b = &Bucket{From: time.Duration(i) * bucket, To: time.Duration(i+1) * bucket}
			byIndex[i] = b
		}
		last = max(last, i)
		b.Calls++
		switch op.Outcome {
		case history.OK:
			in, _ := op.Input.(history.InvokeInput)
			out, _ := op.Output.(history.InvokeOutput)
			if out.Nonce != in.Nonce {
				r.Wrong = append(r.Wrong, op)
				continue
			}
			if out.FunctionError != "" {
				r.Failed++
				continue
			}
			r.OKs++
			b.OKs++
		case history.Fail:
			r.Failed++
			if op.Error == ErrThrottled {
				r.Throttled++
				b.Throttled++
			}
		case history.Unknown:
			r.Unknown++
		}
	}
	for i := 0; i <= last; i++ {
		if b := byIndex[i]; b != nil {
			r.Buckets = append(r.Buckets, *b)
		} else {
			r.Buckets = append(r.Buckets, Bucket{From: time.Duration(i) * bucket, To: time.Duration(i+1) * bucket})
		}
	}
	return r
}

// RecoveredBy returns the start of the first bucket from which every
// bucket up to the end had a success rate of 1, or an error if the last
// bucket still failed calls.
func (r SyncReport) RecoveredBy() (time.Duration, error) {
	if len(r.Buckets) == 0 {
		return 0, nil
	}
	i := len(r.Buckets)
	for i > 0 && r.Buckets[i-1].Rate() == 1 {
		i--
	}
	if i == len(r.Buckets) {
		b := r.Buckets[i-1]
		return 0, fmt.Errorf("success rate still %.2f in the last bucket [%v, %v)", b.Rate(), b.From, b.To)
	}
	return r.Buckets[i].From, nil
}

// RanTwice returns the nonces that occur more than once in runs (one entry
// per execution the function itself recorded), with how often each ran:
// a synchronous invocation must never run twice for one request.
func RanTwice(runs []string) map[string]int {
	seen := map[string]int{}
	for _, n := range runs {
		seen[n]++
	}
	out := map[string]int{}
	for n, c := range seen {
		if c > 1 {
			out[n] = c
		}
	}
	return out
}
