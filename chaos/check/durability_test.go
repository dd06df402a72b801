package check

import (
	"testing"

	"github.com/stokehq/stoke/chaos/history"
)

func TestLostWrites(t *testing.T) {
	const f = "f"
	present := func(d string, versions ...string) FunctionState {
		st := FunctionState{Exists: true, Description: d, Versions: map[string]bool{}, Aliases: map[string]string{}}
		for _, v := range versions {
			st.Versions[v] = true
		}
		return st
	}
	tests := []struct {
		name  string
		h     *hb
		final FunctionState
		lost  []int // op ids
	}{
		{"everything present", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 30).
			ok(0, history.PublishVersion, f, none, ver("1"), 40, 50),
			present("b", "1"), nil},
		{"create lost", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10),
			FunctionState{}, []int{0}},
		{"create undone by a later delete of unknown outcome", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			unknown(1, history.DeleteFunction, f, none, 20, 30),
			FunctionState{}, nil},
		{"update overwritten by a concurrent update", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 40).
			ok(1, history.UpdateConfig, f, desc("c"), got(""), 30, 35),
			present("c"), nil},
		{"update reverted to an earlier value", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 30).
			ok(0, history.UpdateConfig, f, desc("c"), got(""), 40, 50),
			present("b"), []int{2}},
		{"published version missing", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, ver("1"), 20, 30),
			present("a"), []int{1}},
		{"alias missing", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, ver("1"), 20, 30).
			ok(0, history.CreateAlias, f, history.ControlInput{Alias: "live", Version: "1"}, got(""), 40, 50),
			present("a", "1"), []int{2}},
		{"failed and unknown writes are never lost", new(hb).
			fail(0, history.CreateFunction, f, desc("a"), history.ErrConflict, 0, 10).
			unknown(0, history.UpdateConfig, f, desc("b"), 20, 30),
			FunctionState{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := LostWrites(tt.h.ops, map[string]map[string]FunctionState{"n1": {f: tt.final}})
			var ids []int
			for _, l := range lost {
				ids = append(ids, l.Op.ID)
			}
			if len(ids) != len(tt.lost) {
				t.Fatalf("lost %v, want ops %v", lost, tt.lost)
			}
			for i := range ids {
				if ids[i] != tt.lost[i] {
					t.Fatalf("lost %v, want ops %v", lost, tt.lost)
				}
			}
		})
	}
}
