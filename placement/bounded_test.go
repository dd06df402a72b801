package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPlaceOrder checks Place's ordering on three equal nodes whose
// preference order for the key is A, B, C. With c = 1.25 and three live
// equal nodes, a node has room when load+1 <= ceil(1.25 × (L+1) / 3).
func TestPlaceOrder(t *testing.T) {
	r := NewRing(nodes(3), DefaultConfig())
	const key = "123456789012/hot/1"
	pref := r.Preferred(key, 3, nil)
	a, b, c := pref[0], pref[1], pref[2]
	tests := []struct {
		name  string
		n     int
		loads LoadView
		live  func(string) bool
		want  []string
	}{
		{"nil loads keep preference order", 3, nil, nil, []string{a, b, c}},
		{"zero loads keep preference order", 3, LoadMap{}, nil, []string{a, b, c}},
		// L=10: bound ceil(1.25×11/3) = 5; A would reach 11.
		{"home over bound goes last", 3, LoadMap{a: 10}, nil, []string{b, c, a}},
		{"home over bound, n=1 spills to next", 1, LoadMap{a: 10}, nil, []string{b}},
		// L=20: bound ceil(1.25×21/3) = 9.
		{"two over bound", 3, LoadMap{a: 10, b: 10}, nil, []string{c, a, b}},
		{"over-bound members keep ring order", 3, LoadMap{a: 10, c: 10}, nil, []string{b, a, c}},
		// L=4: bound ceil(1.25×5/3) = 3.
		{"home reaching its bound exactly has room", 3, LoadMap{a: 2, b: 1, c: 1}, nil, []string{a, b, c}},
		{"home one past its bound", 3, LoadMap{a: 3, b: 1}, nil, []string{b, c, a}},
		// A dead: two live nodes, L=5, bound ceil(1.25×6/2) = 4.
		{"dead home, next over bound", 3, LoadMap{b: 5}, liveExcept(a), []string{c, b}},
		// Live L=2, bound ceil(1.25×3/2) = 2, so B has no room; were A's
		// load counted, B's bound would be 64.
		{"dead nodes' load is not counted", 3, LoadMap{a: 100, b: 2}, liveExcept(a), []string{c, b}},
		{"negative load counts as zero", 3, LoadMap{a: -50, b: 3}, nil, []string{a, c, b}},
		{"all dead", 3, LoadMap{}, func(string) bool { return false }, nil},
		{"n=0", 0, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Place(key, tt.n, tt.loads, tt.live); !slices.Equal(got, tt.want) {
				t.Fatalf("Place = %v, want %v (preference %v)", got, tt.want, pref)
			}
		})
	}
}

// TestPlaceWeightedBound: a node of twice the weight has twice the bound.
// Nodes H (16 GiB) and L (8 GiB); with total load 11 and c = 1.25 the
// bounds are ceil(1.25×12×2/3) = 10 and ceil(1.25×12/3) = 5.
func TestPlaceWeightedBound(t *testing.T) {
	ms := []Member{{ID: "H", Weight: gib(16)}, {ID: "L", Weight: gib(8)}}
	r := NewRing(ms, DefaultConfig())
	// Find keys homed on each.
	var onH, onL string
	for _, k := range keys(100) {
		switch h, _ := r.Home(k, nil); {
		case h == "H" && onH == "":
			onH = k
		case h == "L" && onL == "":
			onL = k
		}
	}
	tests := []struct {
		key   string
		loads LoadMap
		want  string
	}{
		{onH, LoadMap{"H": 9, "L": 2}, "H"},  // 10 <= 10
		{onH, LoadMap{"H": 10, "L": 1}, "L"}, // 11 > 10
		{onL, LoadMap{"H": 7, "L": 4}, "L"},  // 5 <= 5
		{onL, LoadMap{"H": 6, "L": 5}, "H"},  // 6 > 5
	}
	for _, tt := range tests {
		if got := r.Place(tt.key, 1, tt.loads, nil); len(got) != 1 || got[0] != tt.want {
			t.Errorf("Place(%q, loads %v) = %v, want [%s]", tt.key, tt.loads, got, tt.want)
		}
	}
}

// boundOf is the load bound of member m of ms after a placement that
// brings the live total to total, in exact integer arithmetic for
// c = 5/4: ceil(5 × total × w / (4 × W)).
func boundOf(ms []Member, m string, total int, live func(string) bool) int {
	var w, sum uint64
	for _, x := range ms {
		if live == nil || live(x.ID) {
			sum += uint64(x.Weight)
			if x.ID == m {
				w = uint64(x.Weight)
			}
		}
	}
	num, den := 5*uint64(total)*w, 4*sum
	return int((num + den - 1) / den)
}

// TestPlaceNeverExceedsBound replays sequences of arrivals and departures
// under skewed keys, placing each arrival on Place's first candidate and
// feeding the load back, and checks after every arrival that the chosen
// node is within its bound. Liveness changes between steps, and weights
// differ, to exercise the weighted and filtered bound.
func TestPlaceNeverExceedsBound(t *testing.T) {
	for _, tt := range []struct {
		n, steps int
		heavy    bool
	}{{3, 20_000, false}, {10, 20_000, true}, {50, 10_000, true}} {
		t.Run(fmt.Sprintf("N=%d/heavy=%v", tt.n, tt.heavy), func(t *testing.T) {
			ms := nodes(tt.n)
			if tt.heavy {
				ms[0].Weight = gib(32)
				ms[1].Weight = gib(4)
			}
			cfg := DefaultConfig()
			cfg.LoadFactor = 1.25 // boundOf assumes 5/4
			r := NewRing(ms, cfg)
			rng := rand.New(rand.NewPCG(uint64(tt.n), 99))
			ks := keys(200)
			loads := LoadMap{}
			type item struct{ node string }
			var inflight []item
			dead := ""
			live := func(id string) bool { return id != dead }
			spilled := 0
			for step := range tt.steps {
				if step%1000 == 0 { // a node dies or comes back now and then
					dead = ""
					if rng.IntN(2) == 0 {
						dead = ms[rng.IntN(len(ms))].ID
					}
				}
				if len(inflight) > 0 && rng.IntN(100) < 45 { // departure
					i := rng.IntN(len(inflight))
					loads[inflight[i].node]--
					inflight[i] = inflight[len(inflight)-1]
					inflight = inflight[:len(inflight)-1]
					continue
				}
				// Zipf-like: a few keys take most arrivals.
				k := ks[min(int(rng.ExpFloat64()*8), len(ks)-1)]
				cands := r.Place(k, 3, loads, live)
				if len(cands) == 0 {
					t.Fatalf("step %d: no candidates", step)
				}
				target := cands[0]
				if target == dead {
					t.Fatalf("step %d: placed on dead %s", step, target)
				}
				if h, _ := r.Home(k, live); h != target {
					spilled++
				}
				loads[target]++
				inflight = append(inflight, item{target})
				total := 0
				for _, x := range ms {
					if live(x.ID) {
						total += loads[x.ID]
					}
				}
				if b := boundOf(ms, target, total, live); loads[target] > b {
					t.Fatalf("step %d: %s has load %d, bound %d (total %d)", step, target, loads[target], b, total)
				}
			}
			t.Logf("%d of %d arrivals spilled past their home", spilled, tt.steps)
			if spilled == 0 {
				t.Fatal("no arrival spilled: the skew did not exercise the bound")
			}
		})
	}
}

// TestPlaceFilteringEqualsRebuiltRing: as for Preferred, Place with a dead
// member equals Place on a ring built without it, loads included.
func TestPlaceFilteringEqualsRebuiltRing(t *testing.T) {
	ms := nodes(12)
	dead := []string{"node-2", "node-9"}
	full := NewRing(ms, DefaultConfig())
	rebuilt := NewRing(without(ms, dead...), DefaultConfig())
	rng := rand.New(rand.NewPCG(3, 4))
	for _, k := range keys(3000) {
		loads := LoadMap{}
		for _, m := range ms {
			loads[m.ID] = rng.IntN(20)
		}
		got := full.Place(k, 4, loads, liveExcept(dead...))
		want := rebuilt.Place(k, 4, loads, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("Place(%q) filtered = %v, rebuilt = %v (loads %v)", k, got, want, loads)
		}
	}
}
