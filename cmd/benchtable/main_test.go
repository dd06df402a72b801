package main

import (
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
pkg: github.com/stokehq/stoke/node
BenchmarkAPIWarmInvoke-2    	    2000	    785597 ns/op	        80.10 bare-p50-µs	       7.933 p50-ratio	       635.4 stoke-p50-µs
BenchmarkHome/N=3-2         	10000000	       107.0 ns/op	       0 B/op	       0 allocs/op
PASS
`

func TestParseRenderSplice(t *testing.T) {
	rows, err := parse(strings.NewReader(sample))
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, %v", rows, err)
	}
	if rows[0].pkg != "node" || rows[0].name != "BenchmarkAPIWarmInvoke" || len(rows[0].metrics) != 4 {
		t.Fatalf("row 0 = %+v", rows[0])
	}
	table := render(rows, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	for _, want := range []string{"| node | APIWarmInvoke | 80.10 bare-p50-µs, 635.4 stoke-p50-µs | p50-ratio 7.933 |", "| node | Home/N=3 | 107.0 ns/op, 0 B/op, 0 allocs/op |  |"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
	doc := "# Performance\n\n## Placement\ntext\n"
	once := splice(doc, table)
	twice := splice(once, strings.Replace(table, "7.933", "1.000", 1))
	if strings.Count(twice, beginMarker) != 1 || !strings.Contains(twice, "p50-ratio 1.000") || !strings.Contains(twice, "## Placement\ntext") {
		t.Fatalf("splice twice:\n%s", twice)
	}
}
