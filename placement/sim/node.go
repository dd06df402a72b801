package sim

import (
	"cmp"
	"slices"
)

// sandbox is one warm or busy sandbox on a node.
type sandbox struct {
	// busyUntil is when its current or last invocation ends (ms). It is
	// idle from then until busyUntil + keep-alive, and gone after.
	busyUntil int64
	memMB     int64
}

// node is a simulated worker: a memory budget and its sandboxes.
type node struct {
	id       string
	budgetMB int64
	usedMB   int64 // memory of every sandbox in byFn, expired ones included until swept
	byFn     map[int32][]sandbox
	inflight int // invocations running now

	// Measured after warm-up.
	busyMs       int64 // execution time served, for the imbalance figure
	minuteBusyMs int64 // the same, for the current minute
}

func newNode(id string, budgetMB int64) *node {
	return &node{id: id, budgetMB: budgetMB, byFn: map[int32][]sandbox{}}
}

// outcome is what a node did with an invocation.
type outcome int

const (
	refused outcome = iota // no idle sandbox and no memory for one
	warm                   // ran on an idle sandbox
	cold                   // created a sandbox for it
)

// run tries to run function fn (memMB) at time now for duration ms.
// It uses the most recently used idle sandbox of fn; otherwise it creates
// one, first dropping expired sandboxes and then evicting idle ones, least
// recently used first, until the memory fits; if even that cannot make
// room it refuses and changes nothing.
func (n *node) run(fn int32, memMB, now, duration, coldStartMs, keepAlive int64) outcome {
	sbs := n.byFn[fn]
	best := -1
	for i := 0; i < len(sbs); i++ {
		sb := sbs[i]
		if sb.busyUntil > now {
			continue
		}
		if now >= sb.busyUntil+keepAlive { // expired: reclaim it
			n.usedMB -= sb.memMB
			sbs[i] = sbs[len(sbs)-1]
			sbs = sbs[:len(sbs)-1]
			i--
			continue
		}
		if best < 0 || sb.busyUntil > sbs[best].busyUntil {
			best = i
		}
	}
	n.byFn[fn] = sbs
	if best >= 0 {
		sbs[best].busyUntil = now + duration
		return warm
	}

	if memMB > n.budgetMB {
		return refused
	}
	if n.usedMB+memMB > n.budgetMB {
		n.sweep(now, keepAlive)
	}
	if n.usedMB+memMB > n.budgetMB && !n.evict(memMB, now) {
		return refused
	}
	n.byFn[fn] = append(n.byFn[fn], sandbox{busyUntil: now + coldStartMs + duration, memMB: memMB})
	n.usedMB += memMB
	return cold
}

// sweep drops every expired sandbox.
func (n *node) sweep(now, keepAlive int64) {
	for fn, sbs := range n.byFn {
		kept := sbs[:0]
		for _, sb := range sbs {
			if sb.busyUntil <= now && now >= sb.busyUntil+keepAlive {
				n.usedMB -= sb.memMB
				continue
			}
			kept = append(kept, sb)
		}
		if len(kept) == 0 {
			delete(n.byFn, fn)
		} else {
			n.byFn[fn] = kept
		}
	}
}

// evict frees idle sandboxes, least recently used first, until memMB
// more fits, and reports whether it does. It evicts nothing if it cannot
// succeed.
func (n *node) evict(memMB, now int64) bool {
	type victim struct {
		fn        int32
		busyUntil int64
		memMB     int64
	}
	var idle []victim
	var idleMB int64
	for fn, sbs := range n.byFn {
		for _, sb := range sbs {
			if sb.busyUntil <= now {
				idle = append(idle, victim{fn, sb.busyUntil, sb.memMB})
				idleMB += sb.memMB
			}
		}
	}
	need := n.usedMB + memMB - n.budgetMB
	if idleMB < need {
		return false
	}
	slices.SortFunc(idle, func(a, b victim) int {
		if c := cmp.Compare(a.busyUntil, b.busyUntil); c != 0 {
			return c
		}
		return cmp.Compare(a.fn, b.fn)
	})
	for _, v := range idle {
		if need <= 0 {
			break
		}
		sbs := n.byFn[v.fn]
		for i, sb := range sbs {
			if sb.busyUntil == v.busyUntil && sb.memMB == v.memMB {
				sbs[i] = sbs[len(sbs)-1]
				sbs = sbs[:len(sbs)-1]
				break
			}
		}
		if len(sbs) == 0 {
			delete(n.byFn, v.fn)
		} else {
			n.byFn[v.fn] = sbs
		}
		n.usedMB -= v.memMB
		need -= v.memMB
	}
	return true
}

// idleMB is the memory held by idle, unexpired sandboxes at time now.
func (n *node) idleMB(now, keepAlive int64) int64 {
	var sum int64
	for _, sbs := range n.byFn {
		for _, sb := range sbs {
			if sb.busyUntil <= now && now < sb.busyUntil+keepAlive {
				sum += sb.memMB
			}
		}
	}
	return sum
}
