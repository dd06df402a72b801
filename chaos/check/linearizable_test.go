package check

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/stokehq/stoke/chaos/history"
)

func TestLinearizable(t *testing.T) {
	const f, g = "f", "g"
	tests := []struct {
		name string
		h    *hb
		want porcupine.CheckResult
	}{
		{"sequential create update read", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 30).
			ok(1, history.GetFunction, f, none, got("b"), 40, 50), porcupine.Ok},
		{"stale read after acknowledged update", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 30).
			ok(1, history.GetFunction, f, none, got("a"), 40, 50), porcupine.Illegal},
		{"concurrent updates read in either order", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 60).
			ok(1, history.UpdateConfig, f, desc("c"), got(""), 25, 55).
			ok(2, history.GetFunction, f, none, got("b"), 70, 80).
			ok(2, history.GetFunction, f, none, got("b"), 90, 95), porcupine.Ok},
		{"reads flip back to an overwritten value", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 20, 60).
			ok(1, history.UpdateConfig, f, desc("c"), got(""), 25, 55).
			ok(2, history.GetFunction, f, none, got("b"), 70, 80).
			ok(2, history.GetFunction, f, none, got("c"), 90, 95), porcupine.Illegal},
		{"unknown create later observed", new(hb).
			unknown(0, history.CreateFunction, f, desc("a"), 0, 10).
			fail(1, history.GetFunction, f, none, history.ErrNotFound, 20, 30).
			ok(1, history.GetFunction, f, none, got("a"), 40, 50), porcupine.Ok},
		{"unknown create never observed", new(hb).
			unknown(0, history.CreateFunction, f, desc("a"), 0, 10).
			fail(1, history.GetFunction, f, none, history.ErrNotFound, 20, 30), porcupine.Ok},
		{"failed create must not take effect", new(hb).
			fail(0, history.CreateFunction, f, desc("a"), history.ErrConflict, 0, 10), porcupine.Illegal},
		{"refused write observed later", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			fail(0, history.UpdateConfig, f, desc("b"), history.ErrNotFound, 20, 30), porcupine.Illegal},
		{"publish unchanged returns the newest version", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 20, 30).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 40, 50).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 60, 70).
			ok(0, history.PublishVersion, f, none, pub("2", "b"), 80, 90).
			ok(1, history.GetFunction, f, history.ControlInput{Qualifier: "1"}, got("a"), 100, 110), porcupine.Ok},
		{"publish invents a version", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 20, 30).
			ok(0, history.PublishVersion, f, none, pub("2", "a"), 40, 50), porcupine.Illegal},
		{"published version shows a later description", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 20, 30).
			ok(0, history.UpdateConfig, f, desc("b"), got(""), 40, 50).
			ok(1, history.GetFunction, f, history.ControlInput{Qualifier: "1"}, got("b"), 60, 70), porcupine.Illegal},
		{"alias needs an existing version", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			fail(0, history.CreateAlias, f, history.ControlInput{Alias: "live", Version: "1"}, history.ErrNotFound, 20, 30).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 40, 50).
			ok(0, history.CreateAlias, f, history.ControlInput{Alias: "live", Version: "1"}, got(""), 60, 70).
			fail(1, history.CreateAlias, f, history.ControlInput{Alias: "live", Version: "1"}, history.ErrConflict, 80, 90).
			ok(1, history.GetAlias, f, history.ControlInput{Alias: "live"}, ver("1"), 100, 110), porcupine.Ok},
		{"alias acknowledged for a missing version", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.CreateAlias, f, history.ControlInput{Alias: "live", Version: "3"}, got(""), 20, 30), porcupine.Illegal},
		{"delete removes versions and aliases", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(0, history.PublishVersion, f, none, pub("1", "a"), 20, 30).
			ok(0, history.DeleteFunction, f, none, got(""), 40, 50).
			ok(0, history.CreateFunction, f, desc("b"), got(""), 60, 70).
			fail(1, history.GetFunction, f, history.ControlInput{Qualifier: "1"}, history.ErrNotFound, 80, 90).
			ok(1, history.PublishVersion, f, none, pub("1", "b"), 100, 110), porcupine.Ok},
		{"functions are independent", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			ok(1, history.CreateFunction, g, desc("x"), got(""), 0, 10).
			ok(0, history.GetFunction, g, none, got("x"), 20, 30).
			ok(1, history.GetFunction, f, none, got("a"), 20, 30), porcupine.Ok},
		{"refusals the model does not predict are ignored", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			fail(1, history.UpdateConfig, f, desc("b"), "AccessDeniedException", 20, 30).
			fail(1, history.GetFunction, f, none, "ConnectionRefused", 20, 30).
			ok(0, history.GetFunction, f, none, got("a"), 40, 50), porcupine.Ok},
		{"unknown reads are ignored", new(hb).
			ok(0, history.CreateFunction, f, desc("a"), got(""), 0, 10).
			unknown(1, history.GetFunction, f, none, 20, 30), porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := ""
			if tt.want != porcupine.Ok {
				dir = t.TempDir()
			}
			res := Linearizable(tt.h.ops, 10*time.Second, dir)
			if res.Result != tt.want {
				t.Fatalf("got %v, want %v", res, tt.want)
			}
			if tt.want == porcupine.Illegal && res.Visualization == "" {
				t.Errorf("no visualization written for an illegal history")
			}
		})
	}
}
