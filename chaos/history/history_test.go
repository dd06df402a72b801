package history

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	a := r.Begin(0, "n1", CreateFunction, "f", ControlInput{Description: "a"})
	b := r.Begin(1, "n2", GetFunction, "f", ControlInput{})
	gotB := b.Unknown("timeout")
	gotA := a.OK(ControlOutput{})
	if again := a.Fail("late"); again.Outcome != OK {
		t.Fatalf("a second end changed the op: %+v", again)
	}
	ops := r.Ops()
	if len(ops) != 2 || ops[0].ID != 0 || ops[1].ID != 1 {
		t.Fatalf("ops not in call order: %+v", ops)
	}
	if gotA.Call > gotB.Call || gotA.Return < gotB.Return || gotA.Return < gotA.Call {
		t.Fatalf("times not monotonic: a=[%v,%v] b=[%v,%v]", gotA.Call, gotA.Return, gotB.Call, gotB.Return)
	}
	if ops[1].Outcome != Unknown || ops[1].Error != "timeout" || ops[0].Output != (ControlOutput{}) {
		t.Fatalf("recorded %+v", ops)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, ops); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 2 || !strings.Contains(buf.String(), `"outcome":"unknown"`) {
		t.Fatalf("JSON lines:\n%s", buf.String())
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ops) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, ops)
	}
	inv := []Op{{ID: 3, Kind: Invoke, Input: InvokeInput{Nonce: "x"}, Outcome: OK, Output: InvokeOutput{Nonce: "x", StartUnixNano: 5}}}
	buf.Reset()
	_ = WriteJSON(&buf, inv)
	if back, err := ReadJSON(&buf); err != nil || !reflect.DeepEqual(back, inv) {
		t.Fatalf("invoke round trip: %+v %v", back, err)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r.Begin(c, "n1", UpdateConfig, "f", nil).OK(nil)
			}
		}()
	}
	wg.Wait()
	ops := r.Ops()
	if len(ops) != 800 {
		t.Fatalf("%d ops recorded, want 800", len(ops))
	}
	for i, op := range ops {
		if op.ID != i {
			t.Fatalf("op %d has id %d", i, op.ID)
		}
	}
	if got := len(Filter(ops, func(op Op) bool { return op.Client == 3 })); got != 100 {
		t.Fatalf("client 3 has %d ops", got)
	}
}
