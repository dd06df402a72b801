package placement

import (
	"math/rand/v2"
	"testing"
)

// TestHasRoomAgreesWithPlace: a member has room exactly when Place, asked
// for every member, lists it among those ahead of the members without
// room. Checked by comparing against Place's first choice: Place puts a
// member with room first, so HasRoom(Place(key)[0]) must hold unless no
// live member has room (impossible by the bound's sum), and a member
// without room never comes before one with room.
func TestHasRoomAgreesWithPlace(t *testing.T) {
	ms := nodes(7)
	ms[0].Weight = gib(16)
	r := NewRing(ms, DefaultConfig())
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range keys(2000) {
		loads := LoadMap{}
		for _, m := range ms {
			loads[m.ID] = rng.IntN(12)
		}
		dead := ms[rng.IntN(len(ms))].ID
		live := liveExcept(dead)
		order := r.Place(k, len(ms), loads, live)
		seenFull := false
		for _, id := range order {
			room := r.HasRoom(id, loads, live)
			if room && seenFull {
				t.Fatalf("key %s: %s has room but Place put it after a full member (%v, loads %v)", k, id, order, loads)
			}
			seenFull = seenFull || !room
		}
		if !r.HasRoom(order[0], loads, live) {
			t.Fatalf("key %s: Place's first choice %s has no room", k, order[0])
		}
		if r.HasRoom(dead, loads, live) || r.HasRoom("stranger", loads, live) {
			t.Fatal("a dead or unknown member has room")
		}
	}
}
