package codepkg

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzConvert from the archive generators")

const seedDir = "testdata/fuzz/FuzzConvert"

// seedArchives are the fuzz seeds: every refused archive of the table-driven
// tests and an accepted Python-like tree.
func seedArchives(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{"accepted-python-tree": buildZip(t, pythonTree()...)}
	for _, ra := range refusedArchives() {
		seeds[strings.ReplaceAll(ra.name, " ", "-")] = ra.zip(t)
	}
	return seeds
}

// TestFuzzSeedCorpus keeps the committed corpus equal to what the
// generators produce. Refresh it with: go test -run TestFuzzSeedCorpus
// ./node/codepkg -update-seeds
func TestFuzzSeedCorpus(t *testing.T) {
	for name, z := range seedArchives(t) {
		path := filepath.Join(seedDir, name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(z)) + ")\n"
		if *updateSeeds {
			if err := os.MkdirAll(seedDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v): run go test -run TestFuzzSeedCorpus ./node/codepkg -update-seeds", path, err)
		}
	}
}

// FuzzConvert: Convert never panics and refuses only with an *Error; what it
// accepts, Unpack reproduces exactly as the manifest lists it, with nothing
// outside the destination.
func FuzzConvert(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzConvert is loaded by the
	// fuzzing engine itself.
	restore := syncTree
	syncTree = func(string) error { return nil }
	f.Cleanup(func() { syncTree = restore })
	limits := DefaultLimits()
	limits.MaxUnzippedBytes = 8 << 20
	limits.MaxFiles = 2000
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		m, err := ConvertBytes(data, limits, &out)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Kind.Sentinel() == nil || ce.Message == "" {
				t.Fatalf("Convert refused with %T %v, want an *Error", err, err)
			}
			return
		}
		outer := t.TempDir()
		dest := filepath.Join(outer, "pkg")
		if err := Unpack(context.Background(), bytes.NewReader(out.Bytes()), dest, m.TarZstSHA256Hex); err != nil {
			t.Fatalf("Unpack of an accepted package: %v", err)
		}
		ents, err := os.ReadDir(outer)
		if err != nil || len(ents) != 1 {
			t.Fatalf("outside dest: %v %v", ents, err)
		}
		want := map[string]FileType{}
		for _, fl := range m.Files {
			want[fl.Path] = fl.Type
		}
		seen := 0
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dest {
				return err
			}
			rel, _ := filepath.Rel(dest, p)
			typ, ok := want[filepath.ToSlash(rel)]
			if !ok {
				t.Errorf("%s on disk but not in the manifest", rel)
			}
			seen++
			if d.Type()&fs.ModeSymlink != 0 {
				if typ != TypeSymlink {
					t.Errorf("%s is a symlink, manifest says %s", rel, typ)
				}
				if real, err := filepath.EvalSymlinks(p); err == nil && real != dest && !strings.HasPrefix(real, dest+string(filepath.Separator)) {
					t.Errorf("%s resolves to %s, outside %s", rel, real, dest)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != len(m.Files) {
			t.Fatalf("%d paths on disk, manifest lists %d", seen, len(m.Files))
		}
		if err := RemoveTree(dest); err != nil {
			t.Fatal(err)
		}
	})
}
