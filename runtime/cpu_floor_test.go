package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCPUWeightFloor: in weight mode a small function's sandbox weighs at
// least as much as a CPUFloorMB one, so busy large neighbours cannot push
// its share down to 1/14 of theirs; above the floor, weight stays
// proportional to memory.
func TestCPUWeightFloor(t *testing.T) {
	p := newTestPool(t, map[string]string{"go": goFunction(t)}, func(c *PoolConfig) { c.CPUFloorMB = 512 })
	for _, tc := range []struct {
		name     string
		memMB    int
		weightMB int
	}{{"small", 128, 512}, {"large", 3008, 3008}} {
		fn := goSpec(tc.name)
		fn.MemoryMB = tc.memMB
		invoke(t, p, fn, map[string]string{})
		got := sandboxCPUWeight(t, p, fn.Key)
		if want := cpuWeightFor(p, tc.weightMB); got != want {
			t.Errorf("%d MB function: CPU weight %d, want %d (that of %d MB)", tc.memMB, got, want, tc.weightMB)
		}
	}
}

// cpuWeightFor is the cgroup value setLimits writes for weightMB.
func cpuWeightFor(p *Pool, weightMB int) int {
	if _, v1 := p.cgroups.(*cgroupV1); v1 {
		return max(weightMB*1024/MemoryPerVCPU, 2)
	}
	return min(max(weightMB*100/MemoryPerVCPU, 1), 10000)
}

// sandboxCPUWeight reads cpu.shares (v1) or cpu.weight (v2) of key's one
// live sandbox.
func sandboxCPUWeight(t *testing.T, p *Pool, key string) int {
	t.Helper()
	p.mu.Lock()
	var file string
	for sb := range p.sandboxes {
		if sb.fn.Key != key {
			continue
		}
		switch cg := sb.cg.(type) {
		case *sandboxCgroupV1:
			file = filepath.Join(cgroupRoot, "cpu", cg.path, "cpu.shares")
		case *sandboxCgroupV2:
			file = filepath.Join(cgroupRoot, cg.path, "cpu.weight")
		}
	}
	p.mu.Unlock()
	if file == "" {
		t.Fatalf("no sandbox of %s with a cgroup", key)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
