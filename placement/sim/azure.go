package sim

import (
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// AzureTraceDirEnv names the environment variable that points the
// benchmarks at a directory holding the Azure Functions 2019 samples
// (1000_inv.csv and friends), for the 1,000-function sample that is too
// large to ship in testdata.
const AzureTraceDirEnv = "STOKE_AZURE_TRACE_DIR"

// LoadAzure reads the n-function sample of the Azure Functions 2019 trace
// from dir, in the layout of Microsoft's release as sampled by vHive's
// invitro: n_inv.csv (per-minute invocation counts of each function),
// n_run.csv (per-function execution time percentiles) and n_mem.csv
// (per-app allocated memory). Each file may also be gzip-compressed with
// a .gz suffix.
//
// A function takes its app's average allocated memory and the duration
// distribution of its percentiles. Functions missing from n_run.csv or
// whose app is missing from n_mem.csv are an error.
func LoadAzure(dir string, n int) (*Trace, error) {
	inv, err := readCSV(dir, fmt.Sprintf("%d_inv.csv", n))
	if err != nil {
		return nil, err
	}
	run, err := readCSV(dir, fmt.Sprintf("%d_run.csv", n))
	if err != nil {
		return nil, err
	}
	mem, err := readCSV(dir, fmt.Sprintf("%d_mem.csv", n))
	if err != nil {
		return nil, err
	}

	for _, f := range []struct {
		name string
		rows [][]string
		cols []string
	}{
		{"inv", inv, []string{"HashFunction", "HashApp", "HashOwner"}},
		{"run", run, []string{"HashFunction"}},
		{"mem", mem, []string{"HashApp"}},
	} {
		h := header(f.rows[0])
		for _, col := range f.cols {
			if _, ok := h[col]; !ok {
				return nil, fmt.Errorf("sim: %d_%s.csv has no %s column", n, f.name, col)
			}
		}
	}

	// Durations by HashFunction, from the percentiles of its average
	// duration.
	durations := map[string]Quantiles{}
	rh := header(run[0])
	pcols := []string{"percentile_Average_0", "percentile_Average_1", "percentile_Average_25",
		"percentile_Average_50", "percentile_Average_75", "percentile_Average_99", "percentile_Average_100"}
	probs := []float64{0, 0.01, 0.25, 0.50, 0.75, 0.99, 1}
	for _, row := range run[1:] {
		q := Quantiles{P: probs, Millis: make([]float64, len(pcols))}
		for i, col := range pcols {
			v, err := field(row, rh, col)
			if err != nil {
				return nil, fmt.Errorf("sim: %d_run.csv: %w", n, err)
			}
			q.Millis[i] = v
			if i > 0 && q.Millis[i] < q.Millis[i-1] { // keep the quantile function monotone
				q.Millis[i] = q.Millis[i-1]
			}
		}
		durations[row[rh["HashFunction"]]] = q
	}

	memory := map[string]int{}
	mh := header(mem[0])
	for _, row := range mem[1:] {
		v, err := field(row, mh, "AverageAllocatedMb")
		if err != nil {
			return nil, fmt.Errorf("sim: %d_mem.csv: %w", n, err)
		}
		memory[row[mh["HashApp"]]] = max(int(v), 1)
	}

	ih := header(inv[0])
	first, ok := ih["minute_1"]
	if !ok {
		return nil, fmt.Errorf("sim: %d_inv.csv: no minute_1 column", n)
	}
	minutes := len(inv[0]) - first
	tr := &Trace{Name: fmt.Sprintf("azure-%d", n)}
	for _, row := range inv[1:] {
		fn, app, owner := row[ih["HashFunction"]], row[ih["HashApp"]], row[ih["HashOwner"]]
		d, ok := durations[fn]
		if !ok {
			return nil, fmt.Errorf("sim: function %s has no durations in %d_run.csv", fn, n)
		}
		m, ok := memory[app]
		if !ok {
			return nil, fmt.Errorf("sim: app %s has no memory in %d_mem.csv", app, n)
		}
		counts := make([]int32, minutes)
		for i := range counts {
			c, err := strconv.Atoi(row[first+i])
			if err != nil || c < 0 {
				return nil, fmt.Errorf("sim: %d_inv.csv: function %s minute %d: bad count %q", n, fn, i+1, row[first+i])
			}
			counts[i] = int32(c)
		}
		tr.Functions = append(tr.Functions, Function{Key: short(owner) + "/" + short(fn) + "/1", MemoryMB: m, Duration: d})
		tr.Counts = append(tr.Counts, counts)
	}
	if len(tr.Functions) == 0 {
		return nil, fmt.Errorf("sim: %d_inv.csv has no functions", n)
	}
	return tr, nil
}

// readCSV reads dir/name, or dir/name.gz if only that exists.
func readCSV(dir, name string) ([][]string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path += ".gz"
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("sim: %s: no data rows", path)
	}
	return rows, nil
}

func header(row []string) map[string]int {
	h := make(map[string]int, len(row))
	for i, name := range row {
		h[name] = i
	}
	return h
}

func field(row []string, h map[string]int, col string) (float64, error) {
	i, ok := h[col]
	if !ok || i >= len(row) {
		return 0, fmt.Errorf("no column %s", col)
	}
	v, err := strconv.ParseFloat(row[i], 64)
	if err != nil {
		return 0, fmt.Errorf("column %s: %w", col, err)
	}
	return v, nil
}

// short abbreviates a trace hash to 12 characters: unique within the
// samples and kept short so keys hash like Stoke's real ones.
func short(h string) string { return h[:min(len(h), 12)] }
