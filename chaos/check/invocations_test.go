package check

import (
	"reflect"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/history"
)

func invoke(id int, kind, nonce string, outcome history.Outcome, echoed string, call, ret int) history.Op {
	op := history.Op{ID: id, Kind: kind, Key: "f", Input: history.InvokeInput{Nonce: nonce}, Outcome: outcome,
		Call: ms(call), Return: ms(ret)}
	if outcome == history.OK {
		op.Output = history.InvokeOutput{Nonce: echoed}
	}
	return op
}

func TestDeliveries(t *testing.T) {
	ops := []history.Op{
		invoke(0, history.InvokeAsync, "a", history.OK, "", 0, 1),
		invoke(1, history.InvokeAsync, "b", history.OK, "", 0, 1),
		invoke(2, history.InvokeAsync, "c", history.OK, "", 0, 1),
		invoke(3, history.InvokeAsync, "d", history.Unknown, "", 0, 1),
		invoke(4, history.InvokeAsync, "e", history.Unknown, "", 0, 1),
		invoke(5, history.Invoke, "s", history.OK, "s", 0, 1), // sync: not an event
	}
	r := Deliveries(ops, []string{"a", "a", "a", "c", "d", "zz"})
	want := DeliveryReport{Acked: 3, Delivered: 3, Lost: []string{"b"}, Duplicates: 2, Phantoms: []string{"zz"}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if r.OK() {
		t.Fatal("a report with a lost event is OK")
	}
	if r := Deliveries(ops[:1], []string{"a", "a"}); !r.OK() || r.Duplicates != 1 {
		t.Fatalf("duplicates alone must pass and be counted: %+v", r)
	}
}

func TestSyncInvocations(t *testing.T) {
	ops := []history.Op{
		invoke(0, history.Invoke, "a", history.OK, "a", 0, 100),
		invoke(1, history.Invoke, "b", history.Unknown, "", 1100, 1200),
		invoke(2, history.Invoke, "c", history.OK, "c", 1300, 1400),
		invoke(3, history.Invoke, "d", history.Fail, "", 1500, 1600),
		invoke(4, history.Invoke, "e", history.OK, "e", 3100, 3200),
		invoke(5, history.InvokeAsync, "x", history.OK, "", 3100, 3200),
	}
	ops[3].Error = ErrThrottled
	r := SyncInvocations(ops, time.Second)
	if r.Calls != 5 || r.OKs != 3 || r.Failed != 1 || r.Throttled != 1 || r.Buckets[1].Throttled != 1 || r.Unknown != 1 || !r.OK() {
		t.Fatalf("counts: %+v", r)
	}
	rates := []float64{}
	for _, b := range r.Buckets {
		rates = append(rates, b.Rate())
	}
	if want := []float64{1, 1.0 / 3, 1, 1}; !reflect.DeepEqual(rates, want) {
		t.Fatalf("rates %v, want %v", rates, want)
	}
	if at, err := r.RecoveredBy(); err != nil || at != 2*time.Second {
		t.Fatalf("RecoveredBy = %v, %v; want 2s", at, err)
	}

	wrong := append(ops, invoke(6, history.Invoke, "f", history.OK, "a", 3300, 3400))
	if r := SyncInvocations(wrong, time.Second); r.OK() || len(r.Wrong) != 1 || r.Wrong[0].ID != 6 {
		t.Fatalf("a result echoing another call's nonce must be wrong: %+v", r)
	}
	failingAtEnd := append(ops, invoke(6, history.Invoke, "f", history.Fail, "", 3300, 3400))
	if _, err := SyncInvocations(failingAtEnd, time.Second).RecoveredBy(); err == nil {
		t.Fatal("RecoveredBy must fail when the last bucket still fails")
	}
}

func TestRanTwice(t *testing.T) {
	got := RanTwice([]string{"a", "b", "a", "c", "a", "c"})
	if want := map[string]int{"a": 3, "c": 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RanTwice = %v, want %v", got, want)
	}
	if got := RanTwice([]string{"a", "b"}); len(got) != 0 {
		t.Fatalf("single runs reported: %v", got)
	}
}

func TestMaxOverlap(t *testing.T) {
	tests := []struct {
		name string
		iv   []Interval
		max  int
		at   int64
	}{
		{"none", nil, 0, 0},
		{"disjoint", []Interval{{Start: 0, End: 10}, {Start: 20, End: 30}}, 1, 0},
		{"touching does not overlap", []Interval{{Start: 0, End: 10}, {Start: 10, End: 20}}, 1, 0},
		{"nested", []Interval{{Start: 0, End: 100}, {Start: 10, End: 20}, {Start: 15, End: 18}, {Start: 50, End: 60}}, 3, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, at := MaxOverlap(tt.iv); m != tt.max || at != tt.at {
				t.Fatalf("MaxOverlap = %d at %d, want %d at %d", m, at, tt.max, tt.at)
			}
		})
	}
	ops := []history.Op{
		{ID: 1, Kind: history.Invoke, Outcome: history.OK, Output: history.InvokeOutput{StartUnixNano: 5, EndUnixNano: 9}},
		{ID: 2, Kind: history.Invoke, Outcome: history.Unknown},
		{ID: 3, Kind: history.Invoke, Outcome: history.OK, Output: history.InvokeOutput{StartUnixNano: 7, EndUnixNano: 8}},
	}
	if got := Executions(ops); len(got) != 2 || got[1].Op != 3 {
		t.Fatalf("Executions = %+v", got)
	}
}

func TestConverged(t *testing.T) {
	same := []NodeState{{"a", 7, "h1"}, {"b", 7, "h1"}, {"c", 7, "h1"}}
	if err := Converged(same); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]NodeState{
		{{"a", 7, "h1"}, {"b", 7, "h2"}},
		{{"a", 7, "h1"}, {"b", 6, "h1"}},
		nil,
	} {
		if Converged(bad) == nil {
			t.Errorf("Converged(%v) = nil", bad)
		}
	}
}

func TestMaxGap(t *testing.T) {
	ops := []history.Op{
		{Kind: history.UpdateConfig, Outcome: history.OK, Return: ms(1000)},
		{Kind: history.UpdateConfig, Outcome: history.Unknown, Return: ms(2000)},
		{Kind: history.GetFunction, Outcome: history.OK, Return: ms(3000)},
		{Kind: history.UpdateConfig, Outcome: history.OK, Return: ms(4500)},
	}
	if g := MaxGap(ops, 0, ms(5000), IsWrite); g != ms(3500) {
		t.Fatalf("write gap %v, want 3.5s", g)
	}
	if g := MaxGap(ops, 0, ms(5000), nil); g != ms(2000) {
		t.Fatalf("any-ack gap %v, want 2s", g)
	}
	if g := MaxGap(nil, ms(1000), ms(3000), nil); g != ms(2000) {
		t.Fatalf("empty history gap %v, want the whole window", g)
	}
}

func TestSummaryRow(t *testing.T) {
	s := Summary{Scenario: "leader-kill", Seed: 3, Ops: 10, Acked: 8, Duplicates: -1, MaxUnavailable: 1500 * time.Millisecond}
	if got, want := s.Row(), "| leader-kill | 3 | 10 | 8 | 0 | - | 1.5 | 0 | pass |\n"; got != want {
		t.Fatalf("row %q, want %q", got, want)
	}
	if got := (Summary{Scenario: "worker-kill", Seed: 1, Skipped: "needs code replication (issue 7): invoking f through n2: blob: not found"}).Row(); got != "| worker-kill | 1 | - | - | - | - | - | - | skipped: needs code replication (issue 7) |\n" {
		t.Fatalf("skipped row %q", got)
	}
	s.Failf("lost %d | writes", 2)
	if s.Pass() || s.Row() != "| leader-kill | 3 | 10 | 8 | 0 | - | 1.5 | 0 | FAIL: lost 2 / writes |\n" {
		t.Fatalf("failing row %q", s.Row())
	}
}
