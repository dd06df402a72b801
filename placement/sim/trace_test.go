package sim

import (
	"slices"
	"strings"
	"testing"
)

const azureTestdata = "testdata/azure-functions-2019"

func TestLoadAzure(t *testing.T) {
	tr, err := LoadAzure(azureTestdata, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Functions) != 100 || tr.Minutes() != 1440 {
		t.Fatalf("loaded %d functions over %d minutes, want 100 over 1440", len(tr.Functions), tr.Minutes())
	}
	// The sample's total, counted independently of this loader.
	if got := tr.Total(); got != 621128 {
		t.Errorf("Total() = %d, want 621128", got)
	}
	keys := map[string]bool{}
	for _, f := range tr.Functions {
		if f.MemoryMB < 1 || len(f.Duration.P) != 7 || !slices.IsSorted(f.Duration.Millis) {
			t.Fatalf("function %+v: want memory >= 1 and 7 sorted duration quantiles", f)
		}
		keys[f.Key] = true
	}
	if len(keys) != 100 {
		t.Errorf("%d distinct keys, want 100", len(keys))
	}
	if _, err := LoadAzure(azureTestdata, 7); err == nil || !strings.Contains(err.Error(), "7_inv.csv") {
		t.Errorf("LoadAzure of a missing sample: err = %v, want one naming 7_inv.csv", err)
	}
}

func TestQuantilesAt(t *testing.T) {
	q := Quantiles{P: []float64{0, 0.5, 1}, Millis: []float64{10, 20, 100}}
	tests := []struct {
		u    float64
		want int64
	}{{0, 10}, {0.25, 15}, {0.5, 20}, {0.75, 60}, {0.999, 99}, {1, 100}}
	for _, tt := range tests {
		if got := q.At(tt.u); got != tt.want {
			t.Errorf("At(%v) = %d, want %d", tt.u, got, tt.want)
		}
	}
	if got := (Quantiles{P: []float64{0, 1}, Millis: []float64{0, 0}}).At(0.5); got != 1 {
		t.Errorf("a zero duration = %d, want the 1 ms minimum", got)
	}
}

func TestMinuteExpansion(t *testing.T) {
	tr, err := LoadAzure(azureTestdata, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []int{0, 700, 1439} {
		want := 0
		for _, row := range tr.Counts {
			want += int(row[m])
		}
		got := tr.minute(m, 1, nil)
		if len(got) != want {
			t.Fatalf("minute %d: %d arrivals, want %d", m, len(got), want)
		}
		for i, inv := range got {
			if inv.at < int64(m)*60_000 || inv.at >= int64(m+1)*60_000 {
				t.Fatalf("minute %d: arrival at %d ms outside the minute", m, inv.at)
			}
			if i > 0 && got[i-1].at > inv.at {
				t.Fatalf("minute %d: arrivals not sorted", m)
			}
		}
		if again := tr.minute(m, 1, nil); !slices.Equal(again, got) {
			t.Fatalf("minute %d: expansion not deterministic", m)
		}
		if other := tr.minute(m, 2, nil); want > 10 && slices.Equal(other, got) {
			t.Fatalf("minute %d: the seed does not change the expansion", m)
		}
	}
}

func TestResizeAndWindow(t *testing.T) {
	tr, err := LoadAzure(azureTestdata, 100)
	if err != nil {
		t.Fatal(err)
	}
	sub := tr.Resize(30)
	if len(sub.Functions) != 30 || sub.Functions[29].Key != tr.Functions[29].Key {
		t.Fatalf("Resize(30) kept %d functions", len(sub.Functions))
	}
	big := tr.Resize(250)
	keys := map[string]bool{}
	for _, f := range big.Functions {
		keys[f.Key] = true
	}
	if len(keys) != 250 {
		t.Fatalf("Resize(250) has %d distinct keys, want 250", len(keys))
	}
	if big.Total() != 2*tr.Total()+tr.Resize(50).Total() {
		t.Fatalf("Resize(250) total %d, want two copies and a half", big.Total())
	}
	w, err := tr.Window(60, 30)
	if err != nil || w.Minutes() != 30 || w.Counts[0][0] != tr.Counts[0][60] {
		t.Fatalf("Window(60, 30) = %d minutes, %v", w.Minutes(), err)
	}
	if _, err := tr.Window(1430, 30); err == nil {
		t.Fatal("Window past the end succeeded")
	}
}

// TestSyntheticSkew checks the generator against the shape of the Azure
// 2019 trace (whose 100- and 1,000-function samples measure 31-46% of
// invocations in the top 1% of functions, 85-92% in the top 10%, and
// 73-75% of functions averaging under one invocation a minute), and that
// functions burst.
func TestSyntheticSkew(t *testing.T) {
	tr, err := Synthetic(DefaultSyntheticConfig())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Synthetic(DefaultSyntheticConfig())
	for f := range tr.Counts {
		if !slices.Equal(tr.Counts[f], again.Counts[f]) {
			t.Fatal("Synthetic is not deterministic")
		}
	}
	var totals []int64
	var all int64
	rare, bursts := 0, 0
	for _, row := range tr.Counts {
		var sum int64
		for _, c := range row {
			sum += int64(c)
		}
		mean := float64(sum) / float64(len(row))
		for _, c := range row {
			if c >= 5 && float64(c) >= 5*mean {
				bursts++
			}
		}
		if mean < 1 {
			rare++
		}
		totals = append(totals, sum)
		all += sum
	}
	slices.Sort(totals)
	slices.Reverse(totals)
	share := func(k int) float64 {
		var s int64
		for _, v := range totals[:k] {
			s += v
		}
		return float64(s) / float64(all)
	}
	n := len(totals)
	t.Logf("top 1%%: %.2f, top 10%%: %.2f, rare: %.2f, burst minutes: %d", share(n/100), share(n/10), float64(rare)/float64(n), bursts)
	if share(n/100) < 0.3 || share(n/10) < 0.7 {
		t.Errorf("top 1%% take %.2f and top 10%% take %.2f of invocations, want >= 0.3 and >= 0.7", share(n/100), share(n/10))
	}
	if float64(rare)/float64(n) < 0.5 {
		t.Errorf("%.2f of functions average under one invocation a minute, want >= 0.5", float64(rare)/float64(n))
	}
	if bursts < 100 {
		t.Errorf("%d burst minutes, want >= 100", bursts)
	}
	if err := (SyntheticConfig{Functions: 1, Minutes: 1, TimerFraction: 2}).Validate(); err == nil {
		t.Error("Validate accepted TimerFraction 2")
	}
}
