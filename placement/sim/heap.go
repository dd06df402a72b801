package sim

// endings is a binary min-heap of (time, value) pairs ordered by time: the
// ends of running invocations, with the value the node that runs one (in
// Run) or the memory it holds (in PeakDemandMB). Hand-rolled rather than
// container/heap so that pushing does not box every entry.
type endings []ending

type ending struct {
	at int64 // ms
	v  int
}

func (h *endings) push(e ending) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

// popUntil removes every entry with at <= t, calling f on each.
func (h *endings) popUntil(t int64, f func(ending)) {
	for len(*h) > 0 && (*h)[0].at <= t {
		s := *h
		top := s[0]
		last := len(s) - 1
		s[0] = s[last]
		s = s[:last]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(s) && s[l].at < s[m].at {
				m = l
			}
			if r < len(s) && s[r].at < s[m].at {
				m = r
			}
			if m == i {
				break
			}
			s[i], s[m] = s[m], s[i]
			i = m
		}
		*h = s
		f(top)
	}
}
