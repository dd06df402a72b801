package placement

import (
	"fmt"
	"testing"
)

// The benchmarks measure the per-invocation cost of the ring at the
// cluster sizes Stoke targets: a 3-node laptop cluster, a rack of 20 and
// 100 servers. Nodes are 16 GiB (640 points each under DefaultConfig).
// Keys cycle through 4096 function versions so that lookups are not all
// served from one cache line.

var benchSizes = []int{3, 20, 100}

func benchRing(n int) (*Ring, []string) {
	ms := nodes(n)
	for i := range ms {
		ms[i].Weight = gib(16)
	}
	return NewRing(ms, DefaultConfig()), keys(4096)
}

var sinkStrings []string
var sinkString string

func BenchmarkHome(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			r, ks := benchRing(n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkString, _ = r.Home(ks[i%len(ks)], nil)
				i++
			}
		})
	}
}

func BenchmarkPreferred(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d/n=3", n), func(b *testing.B) {
			r, ks := benchRing(n)
			dead := r.Members()[0].ID
			live := func(id string) bool { return id != dead }
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkStrings = r.Preferred(ks[i%len(ks)], 3, live)
				i++
			}
		})
	}
}

func BenchmarkPlace(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d/n=3", n), func(b *testing.B) {
			r, ks := benchRing(n)
			// Uneven loads, a few members over their bound.
			loads := LoadMap{}
			for i, m := range r.Members() {
				loads[m.ID] = (i * 7) % 23
			}
			dead := r.Members()[0].ID
			live := func(id string) bool { return id != dead }
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkStrings = r.Place(ks[i%len(ks)], 3, loads, live)
				i++
			}
		})
	}
}

func BenchmarkNewRing(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ms := nodes(n)
			for i := range ms {
				ms[i].Weight = gib(16)
			}
			b.ReportAllocs()
			for b.Loop() {
				NewRing(ms, DefaultConfig())
			}
		})
	}
}

var sinkHash uint64

// BenchmarkHashKey is the cost of hashing one function version key, part
// of every lookup.
func BenchmarkHashKey(b *testing.B) {
	ks := keys(4096) // "123456789012/fn-N/V", about 20 bytes
	i := 0
	for b.Loop() {
		sinkHash = hashKey(ks[i%len(ks)])
		i++
	}
}
