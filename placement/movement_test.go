package placement

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestMinimalMovement measures, when one of N nodes leaves or one joins,
// the fraction of keys whose home changes, and checks it against the
// consistent-hashing ideal: 1/N on a leave (the leaver's share) and
// 1/(N+1) on a join (the joiner's share).
//
// Exactly: on a leave only the leaver's keys move, and on a join keys
// move only to the joiner. Statistically: each member's share of the
// ring has a relative standard deviation of about 1/sqrt(320) = 5.6% for
// 8 GiB nodes (320 points each), and sampling 100,000 keys adds at most
// 1/sqrt(100,000/50) = 2.2%; the 25% tolerance is over four standard
// deviations of the two combined.
func TestMinimalMovement(t *testing.T) {
	const nKeys = 100_000
	const tolerance = 0.25
	ks := keys(nKeys)
	for _, n := range []int{5, 10, 50} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			ms := nodes(n)
			before := NewRing(ms, DefaultConfig())
			homeBefore := homes(before, ks)
			top3Before := make([][]string, nKeys)
			for i, k := range ks {
				top3Before[i] = before.Preferred(k, 3, nil)
			}

			type event struct {
				name  string
				after []Member
				ideal float64
				// mayMove reports whether a key may change home from a
				// to b in this event.
				mayMove func(a, b string) bool
			}
			var events []event
			for _, i := range []int{0, n / 2, n - 1} {
				leaver := ms[i].ID
				events = append(events, event{
					name: "leave " + leaver, after: without(ms, leaver), ideal: 1 / float64(n),
					mayMove: func(a, _ string) bool { return a == leaver },
				})
			}
			for _, joiner := range []string{fmt.Sprintf("node-%d", n), "joiner-a", "joiner-b"} {
				events = append(events, event{
					name: "join " + joiner, after: append(slices.Clone(ms), Member{ID: joiner, Weight: gib(8)}), ideal: 1 / float64(n+1),
					mayMove: func(_, b string) bool { return b == joiner },
				})
			}
			for _, ev := range events {
				after := NewRing(ev.after, DefaultConfig())
				moved, top3Changed := 0, 0
				for i, k := range ks {
					h, _ := after.Home(k, nil)
					if h != homeBefore[i] {
						moved++
						if !ev.mayMove(homeBefore[i], h) {
							t.Fatalf("%s: key %q moved %s -> %s", ev.name, k, homeBefore[i], h)
						}
					}
					if !sameSet(top3Before[i], after.Preferred(k, 3, nil)) {
						top3Changed++
					}
				}
				frac := float64(moved) / nKeys
				t.Logf("%s: %.4f of homes moved (ideal %.4f, ratio %.3f); top-3 set changed for %.4f",
					ev.name, frac, ev.ideal, frac/ev.ideal, float64(top3Changed)/nKeys)
				if math.Abs(frac/ev.ideal-1) > tolerance {
					t.Errorf("%s: %.4f of homes moved, want %.4f ± %.0f%%", ev.name, frac, ev.ideal, 100*tolerance)
				}
			}
		})
	}
}

func homes(r *Ring, ks []string) []string {
	hs := make([]string, len(ks))
	for i, k := range ks {
		hs[i], _ = r.Home(k, nil)
	}
	return hs
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
