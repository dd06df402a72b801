package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// FuzzPlace builds a ring from fuzzed sizes, weights, liveness and loads
// and checks the invariants of Preferred and Place: no panic, only live
// and distinct members, the expected length, Place with no load equal to
// Preferred, Place a reordering of Preferred whose first member has room
// under the bound (rooms first, each part in ring order), and the same
// answer twice.
//
//	go test -run '^$' -fuzz FuzzPlace ./placement
func FuzzPlace(f *testing.F) {
	f.Add("123456789012/hello/1", uint8(3), int8(3), uint64(0), uint64(1))
	f.Add("", uint8(1), int8(1), uint64(1), uint64(2))
	f.Add("k", uint8(40), int8(-1), uint64(0xffff0000), uint64(3))
	f.Add("\x00\xff", uint8(255), int8(127), uint64(0xaaaaaaaaaaaaaaaa), uint64(4))
	f.Fuzz(func(t *testing.T, key string, size uint8, n int8, deadMask, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, uint64(size)))
		ms := make([]Member, int(size)%48)
		for i := range ms {
			// Weights from a single point to the clamp, zero included.
			ms[i] = Member{ID: fmt.Sprintf("n%d", i), Weight: uint32(rng.IntN(70)) * 1024 / uint32(1+rng.IntN(4))}
		}
		cfg := DefaultConfig()
		cfg.VirtualNodes = 1 + rng.IntN(64)
		r := NewRing(ms, cfg)
		dead := map[string]bool{}
		for i, m := range ms {
			dead[m.ID] = deadMask&(1<<(i%64)) != 0
		}
		live := func(id string) bool { return !dead[id] }
		liveCount := 0
		for _, m := range r.Members() {
			if live(m.ID) {
				liveCount++
			}
		}
		loads := LoadMap{}
		for _, m := range ms {
			loads[m.ID] = rng.IntN(30) - 3
		}
		wantLen := min(max(int(n), 0), liveCount)

		pref := r.Preferred(key, int(n), live)
		checkList(t, "Preferred", pref, wantLen, live)
		if home, ok := r.Home(key, live); ok != (liveCount > 0) || ok && home != r.Preferred(key, 1, live)[0] {
			t.Fatalf("Home = %q, %v with %d live", home, ok, liveCount)
		}
		if got := r.Place(key, int(n), nil, live); !slices.Equal(got, pref) {
			t.Fatalf("Place without loads = %v, Preferred = %v", got, pref)
		}

		place := r.Place(key, int(n), loads, live)
		checkList(t, "Place", place, wantLen, live)
		if again := r.Place(key, int(n), loads, live); !slices.Equal(again, place) {
			t.Fatalf("Place not deterministic: %v then %v", place, again)
		}
		if len(place) == 0 {
			return
		}
		// Against the full live order: the members with room come first,
		// in ring order, and the first one with room (there always is
		// one) leads.
		full := r.Preferred(key, liveCount, live)
		total := 0
		for _, id := range full {
			total += max(loads[id], 0)
		}
		hasRoom := func(id string) bool {
			return max(loads[id], 0)+1 <= boundOfCfg(r, id, total+1, live)
		}
		var rooms []string
		for _, id := range full {
			if hasRoom(id) {
				rooms = append(rooms, id)
			}
		}
		if len(rooms) == 0 {
			t.Fatalf("no live member has room: bound arithmetic is broken (loads %v)", loads)
		}
		wantRooms := rooms[:min(len(rooms), wantLen)]
		if !slices.Equal(place[:len(wantRooms)], wantRooms) {
			t.Fatalf("Place = %v, want it to start with %v (full order %v, loads %v)", place, wantRooms, full, loads)
		}
		for _, id := range place[len(wantRooms):] {
			if hasRoom(id) {
				t.Fatalf("Place = %v lists %s, which has room, after the members with room", place, id)
			}
		}
	})
}

// boundOfCfg is the bound of member id once the live total reaches total,
// computed as Place documents it for r's load factor.
func boundOfCfg(r *Ring, id string, total int, live func(string) bool) int {
	var w, sum float64
	for _, m := range r.Members() {
		if live(m.ID) {
			sum += float64(m.Weight)
			if m.ID == id {
				w = float64(m.Weight)
			}
		}
	}
	b := r.Config().LoadFactor * float64(total) * w / sum
	bi := int(b)
	if float64(bi) < b {
		bi++
	}
	return bi
}

func checkList(t *testing.T, what string, got []string, wantLen int, live func(string) bool) {
	t.Helper()
	if len(got) != wantLen {
		t.Fatalf("%s returned %v, want %d members", what, got, wantLen)
	}
	for i, id := range got {
		if !live(id) {
			t.Fatalf("%s returned dead %s in %v", what, id, got)
		}
		if slices.Contains(got[:i], id) {
			t.Fatalf("%s repeated %s in %v", what, id, got)
		}
	}
}
