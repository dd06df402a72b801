package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRingDeterministicAcrossOrderings builds the same membership from
// shuffled and duplicated lists, as different nodes might receive it, and
// checks that every ring answers identically.
func TestRingDeterministicAcrossOrderings(t *testing.T) {
	for _, n := range []int{1, 3, 20, 100} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			base := nodes(n)
			base[0].Weight = gib(16) // one heterogeneous weight
			want := NewRing(base, DefaultConfig())
			ks := keys(500)
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			for trial := range 5 {
				ms := slices.Clone(base)
				// Duplicates with a smaller weight and junk entries are
				// dropped the same way wherever they land.
				ms = append(ms, Member{ID: base[0].ID, Weight: 1}, Member{ID: "", Weight: 5}, Member{ID: "zero", Weight: 0})
				rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
				got := NewRing(ms, DefaultConfig())
				if !got.Equal(want) || got.Fingerprint() != want.Fingerprint() {
					t.Fatalf("trial %d: ring from shuffled members differs: members %v, want %v", trial, got.Members(), want.Members())
				}
				for _, k := range ks {
					if g, w := got.Preferred(k, n, nil), want.Preferred(k, n, nil); !slices.Equal(g, w) {
						t.Fatalf("trial %d: Preferred(%q) = %v, want %v", trial, k, g, w)
					}
				}
			}
		})
	}
}

// TestRingGolden pins the ring's layout. Nodes running different builds
// of Stoke must place keys identically, so a change to the hash, the
// point layout or tie-breaking is a compatibility break: if this test
// fails, that is what happened.
func TestRingGolden(t *testing.T) {
	r := NewRing(nodes(5), DefaultConfig())
	if got, want := r.Fingerprint(), uint64(goldenFingerprint); got != want {
		t.Errorf("Fingerprint() = %#x, want %#x", got, want)
	}
	for key, want := range goldenPreferences {
		if got := r.Preferred(key, 5, nil); !slices.Equal(got, want) {
			t.Errorf("Preferred(%q, 5) = %q, want %q", key, got, want)
		}
	}
}

func TestFingerprintAndEqual(t *testing.T) {
	base := NewRing(nodes(5), DefaultConfig())
	cfg := DefaultConfig()
	cfg.LoadFactor = 1.5
	heavier := nodes(5)
	heavier[2].Weight++
	tests := []struct {
		name  string
		ring  *Ring
		equal bool
	}{
		{"same members", NewRing(nodes(5), DefaultConfig()), true},
		{"member added", NewRing(nodes(6), DefaultConfig()), false},
		{"member removed", NewRing(nodes(4), DefaultConfig()), false},
		{"weight changed", NewRing(heavier, DefaultConfig()), false},
		{"config changed", NewRing(nodes(5), cfg), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := base.Equal(tt.ring); got != tt.equal {
				t.Fatalf("Equal() = %v, want %v", got, tt.equal)
			}
			if tt.ring != nil {
				if got := base.Fingerprint() == tt.ring.Fingerprint(); got != tt.equal {
					t.Fatalf("fingerprints equal = %v, want %v", got, tt.equal)
				}
			}
		})
	}
}

func TestPreferredShape(t *testing.T) {
	r := NewRing(nodes(5), DefaultConfig())
	empty := NewRing(nil, DefaultConfig())
	tests := []struct {
		name    string
		ring    *Ring
		n       int
		live    func(string) bool
		wantLen int
	}{
		{"home only", r, 1, nil, 1},
		{"three", r, 3, nil, 3},
		{"all", r, 5, nil, 5},
		{"more than members", r, 9, nil, 5},
		{"zero", r, 0, nil, 0},
		{"negative", r, -1, nil, 0},
		{"two dead", r, 5, liveExcept("node-1", "node-3"), 3},
		{"all dead", r, 3, func(string) bool { return false }, 0},
		{"empty ring", empty, 3, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range keys(200) {
				got := tt.ring.Preferred(k, tt.n, tt.live)
				if len(got) != tt.wantLen {
					t.Fatalf("Preferred(%q, %d) = %v, want %d entries", k, tt.n, got, tt.wantLen)
				}
				for i, id := range got {
					if tt.live != nil && !tt.live(id) {
						t.Fatalf("Preferred(%q) = %v includes dead %s", k, got, id)
					}
					if slices.Contains(got[:i], id) {
						t.Fatalf("Preferred(%q) = %v repeats %s", k, got, id)
					}
				}
				home, ok := tt.ring.Home(k, tt.live)
				if first := tt.ring.Preferred(k, 1, tt.live); ok != (len(first) == 1) {
					t.Fatalf("Home(%q) ok = %v, Preferred(%q, 1) = %v", k, ok, k, first)
				}
				if len(got) > 0 && home != got[0] {
					t.Fatalf("Home(%q) = %s, Preferred[0] = %s", k, home, got[0])
				}
			}
		})
	}
}

// TestPreferredLiveOnly checks, under random liveness, that only live
// members are returned and that the list is the live members' order in
// the full preference list.
func TestPreferredLiveOnly(t *testing.T) {
	const n = 20
	r := NewRing(nodes(n), DefaultConfig())
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range keys(2000) {
		alive := map[string]bool{}
		for _, m := range r.Members() {
			alive[m.ID] = rng.IntN(3) > 0
		}
		live := func(id string) bool { return alive[id] }
		var want []string
		for _, id := range r.Preferred(k, n, nil) {
			if alive[id] {
				want = append(want, id)
			}
		}
		want = want[:min(4, len(want))]
		if got := r.Preferred(k, 4, live); !slices.Equal(got, want) {
			t.Fatalf("Preferred(%q, 4, live) = %v, want %v", k, got, want)
		}
	}
}

// TestDeadNodeFilteringEqualsRebuiltRing: skipping a dead member through
// live gives exactly what a ring built without it gives, so routing around
// a node gossip has declared dead agrees with the ring every node will
// build once Raft removes it.
func TestDeadNodeFilteringEqualsRebuiltRing(t *testing.T) {
	tests := []struct {
		n    int
		dead []string
	}{
		{3, []string{"node-0"}},
		{10, []string{"node-4"}},
		{10, []string{"node-1", "node-7"}},
		{50, []string{"node-3", "node-13", "node-33"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("N=%d/dead=%v", tt.n, tt.dead), func(t *testing.T) {
			full := NewRing(nodes(tt.n), DefaultConfig())
			rebuilt := NewRing(without(nodes(tt.n), tt.dead...), DefaultConfig())
			live := liveExcept(tt.dead...)
			affected := 0
			for _, k := range keys(5000) {
				if h, _ := full.Home(k, nil); slices.Contains(tt.dead, h) {
					affected++
				}
				got, want := full.Preferred(k, tt.n, live), rebuilt.Preferred(k, tt.n, nil)
				if !slices.Equal(got, want) {
					t.Fatalf("Preferred(%q) filtered = %v, rebuilt = %v", k, got, want)
				}
			}
			if affected == 0 {
				t.Fatal("no key was homed on a dead node; the test checks nothing")
			}
		})
	}
}

// TestWeightsHonoured gives some nodes twice the weight of the others and
// counts keys. Tolerance: a member with P points has a share whose
// relative standard deviation is about 1/sqrt(P), here 1/sqrt(320) = 5.6%
// for the light nodes, and 200,000 keys add under 1%; 20% is over three
// standard deviations, and the check is deterministic for these names.
func TestWeightsHonoured(t *testing.T) {
	const nKeys = 200_000
	ms := nodes(10)
	heavy := map[string]bool{}
	for i := range 3 {
		ms[i].Weight = gib(16)
		heavy[ms[i].ID] = true
	}
	r := NewRing(ms, DefaultConfig())
	count := map[string]int{}
	for _, k := range keys(nKeys) {
		h, _ := r.Home(k, nil)
		count[h]++
	}
	totalWeight := 0.0
	for _, m := range ms {
		totalWeight += float64(m.Weight)
	}
	var heavySum, lightSum float64
	for _, m := range ms {
		share := float64(count[m.ID]) / nKeys
		want := float64(m.Weight) / totalWeight
		t.Logf("%s weight %d: %.4f of keys, %.4f expected", m.ID, m.Weight, share, want)
		if math.Abs(share/want-1) > 0.20 {
			t.Errorf("%s: share %.4f, want %.4f ± 20%%", m.ID, share, want)
		}
		if heavy[m.ID] {
			heavySum += share
		} else {
			lightSum += share
		}
	}
	ratio := (heavySum / 3) / (lightSum / 7)
	t.Logf("mean heavy share / mean light share = %.3f", ratio)
	if math.Abs(ratio-2) > 0.2 {
		t.Errorf("heavy/light share ratio %.3f, want 2 ± 0.2", ratio)
	}
}

// TestArcBalance measures how evenly the points split the ring among
// equal members: the relative standard deviation of the members' arc
// shares should be close to 1/sqrt(points per member), what independent
// uniform points give. Bounds are 0.5x..1.5x that figure, which the
// sample standard deviation of 20 or more members stays within with
// probability above 99.9%.
func TestArcBalance(t *testing.T) {
	for _, tt := range []struct{ n, gib int }{{20, 4}, {50, 8}, {100, 16}} {
		ms := nodes(tt.n)
		for i := range ms {
			ms[i].Weight = gib(tt.gib)
		}
		r := NewRing(ms, DefaultConfig())
		share := make([]float64, tt.n)
		for i, p := range r.points {
			prev := r.points[(i+len(r.points)-1)%len(r.points)]
			share[r.owners[i]] += float64(p-prev) / (1 << 64) // arc ending at p
		}
		var sq, worst float64
		for _, s := range share {
			x := s * float64(tt.n)
			sq += (x - 1) * (x - 1)
			worst = max(worst, x)
		}
		sd := math.Sqrt(sq / float64(tt.n))
		ideal := 1 / math.Sqrt(float64(pointCount(gib(tt.gib), DefaultConfig())))
		t.Logf("N=%d of %d GiB: share sd %.3f (ideal %.3f), largest share %.3fx fair", tt.n, tt.gib, sd, ideal, worst)
		if sd < 0.5*ideal || sd > 1.5*ideal {
			t.Errorf("N=%d: share sd %.3f outside [%.3f, %.3f]", tt.n, sd, 0.5*ideal, 1.5*ideal)
		}
	}
}

// TestHashBalance checks the key hash against an ideal one: keys that
// differ only in their last characters, as function versions do, must
// fill 1024 equal ranges of the high bits (where the ring looks) with a
// chi-squared statistic near its 1023 degrees of freedom. Plain FNV-1a,
// without the finalizer, scores about 27,600 here.
func TestHashBalance(t *testing.T) {
	const buckets, nKeys = 1024, 200_000
	count := make([]float64, buckets)
	for _, k := range keys(nKeys) {
		count[hashKey(k)>>54]++
	}
	want := float64(nKeys) / buckets
	chi2 := 0.0
	for _, c := range count {
		chi2 += (c - want) * (c - want) / want
	}
	// Mean 1023, standard deviation sqrt(2 × 1023) ≈ 45; 1023 ± 5 sd.
	t.Logf("chi-squared over %d buckets: %.0f", buckets, chi2)
	if chi2 < 1023-5*45 || chi2 > 1023+5*45 {
		t.Errorf("chi-squared %.0f, want within 1023 ± 225", chi2)
	}
}
