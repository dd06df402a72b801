package placement

import (
	"hash/fnv"
	"testing"
)

// Golden values for TestRingGolden: five 8 GiB nodes "node-0".."node-4"
// under DefaultConfig. They were produced by this package when the layout
// was fixed; change them only together with a documented, cluster-wide
// migration.
const goldenFingerprint = 0x9f7c98d511ad45af

var goldenPreferences = map[string][]string{
	"123456789012/hello/1":          {"node-1", "node-4", "node-3", "node-2", "node-0"},
	"123456789012/hello/2":          {"node-0", "node-4", "node-1", "node-3", "node-2"},
	"123456789012/hello/$LATEST":    {"node-2", "node-0", "node-4", "node-3", "node-1"},
	"000000000000/resize-images/17": {"node-0", "node-1", "node-4", "node-2", "node-3"},
	"a":                             {"node-4", "node-1", "node-0", "node-3", "node-2"},
}

// TestFNV1aMatchesStandardLibrary checks the inlined FNV-1a against
// hash/fnv, which implements the published algorithm.
func TestFNV1aMatchesStandardLibrary(t *testing.T) {
	for _, s := range []string{"", "a", "node-0", "123456789012/hello/$LATEST", "\x00\xff"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnv1a(fnvOffset64, s), h.Sum64(); got != want {
			t.Errorf("fnv1a(%q) = %#x, hash/fnv says %#x", s, got, want)
		}
	}
}
