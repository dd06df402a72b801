package node

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// numCPU is the CPU count a node advertises by default.
func numCPU() int { return runtime.NumCPU() }

// systemMemoryMB is the machine's memory from /proc/meminfo (0 if unknown).
func systemMemoryMB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseInt(fields[0], 10, 64)
				return kb / 1024
			}
		}
	}
	return 0
}
