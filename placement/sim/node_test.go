package sim

import "testing"

func TestNodeRun(t *testing.T) {
	const keepAlive, coldStart = 600_000, 100
	type step struct {
		fn       int32
		mem, at  int64
		duration int64
		want     outcome
		usedMB   int64 // after the step
	}
	tests := []struct {
		name   string
		budget int64
		steps  []step
	}{
		{"cold then warm", 1000, []step{
			{1, 100, 0, 1000, cold, 100},
			{1, 100, 2000, 1000, warm, 100}, // idle since 1100
		}},
		{"busy sandbox is not reused", 1000, []step{
			{1, 100, 0, 1000, cold, 100},
			{1, 100, 500, 1000, cold, 200},
		}},
		{"expired sandbox is reclaimed, not reused", 1000, []step{
			{1, 100, 0, 1000, cold, 100},
			{1, 100, 1100 + keepAlive, 1000, cold, 100},
		}},
		{"least recently used idle sandbox is evicted", 300, []step{
			{1, 100, 0, 10, cold, 100},
			{2, 100, 100, 10, cold, 200},
			{3, 100, 200, 10, cold, 300},
			{4, 100, 1000, 10, cold, 300}, // evicts fn 1's
			{2, 100, 2000, 10, warm, 300},
			{1, 100, 3000, 10, cold, 300}, // fn 1 was gone; evicts fn 3's
			{4, 100, 4000, 10, warm, 300},
			{3, 100, 5000, 10, cold, 300},
		}},
		{"refused when evicting every idle sandbox is not enough, nothing evicted", 250, []step{
			{1, 100, 0, 10_000, cold, 100},
			{2, 100, 0, 10, cold, 200},
			{3, 200, 500, 10, refused, 200}, // needs 150 MB freed, 100 MB idle
			{2, 100, 600, 10, warm, 200},    // fn 2's idle sandbox survived the refusal
		}},
		{"sandbox larger than the node", 250, []step{{1, 300, 0, 10, refused, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode("n", tt.budget)
			for i, s := range tt.steps {
				if got := n.run(s.fn, s.mem, s.at, s.duration, coldStart, keepAlive); got != s.want {
					t.Fatalf("step %d: outcome %d, want %d", i, got, s.want)
				}
				if n.usedMB != s.usedMB {
					t.Fatalf("step %d: %d MB used, want %d", i, n.usedMB, s.usedMB)
				}
				if n.usedMB > n.budgetMB {
					t.Fatalf("step %d: %d MB used over a %d MB budget", i, n.usedMB, n.budgetMB)
				}
			}
		})
	}
}

func TestNodeIdleMB(t *testing.T) {
	n := newNode("n", 1000)
	n.run(1, 100, 0, 1000, 0, 5000) // busy until 1000, idle until 6000
	n.run(2, 200, 0, 3000, 0, 5000) // busy until 3000, idle until 8000
	for _, tt := range []struct{ at, want int64 }{{500, 0}, {1000, 100}, {3000, 300}, {6000, 200}, {8000, 0}} {
		if got := n.idleMB(tt.at, 5000); got != tt.want {
			t.Errorf("idleMB(%d) = %d, want %d", tt.at, got, tt.want)
		}
	}
}
