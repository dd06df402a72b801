package blob

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stokehq/stoke/node/codepkg"
)

func testStore(t *testing.T, budget int64) *Store {
	t.Helper()
	s, err := Open(Config{Dir: t.TempDir(), Limits: codepkg.DefaultLimits(), UnpackedBudget: budget,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testZip builds a small zip whose content depends on seed.
func testZip(t *testing.T, seed int, sizes ...int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if len(sizes) == 0 {
		sizes = []int{100}
	}
	for i, n := range sizes {
		w, err := zw.Create(fmt.Sprintf("pkg/file%d.py", i))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte(fmt.Sprintf("# seed %d line %d\n", seed, i)), n/16+1))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a stream an Open method returned: readAll(t)(s.OpenZip(id)).
func readAll(t *testing.T) func(io.ReadCloser, int64, error) []byte {
	return func(rc io.ReadCloser, _ int64, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// flip changes one byte in the middle of a stored file.
func flip(t *testing.T, s *Store, id, name string) {
	t.Helper()
	p := s.path(id, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyTo sends blob id from src to dst through a Writer, with or
// without the zip, optionally damaging one package byte on the way.
func copyTo(t *testing.T, src, dst *Store, id string, withZip, damage bool) (bool, error) {
	t.Helper()
	js, err := src.ManifestJSON(id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dst.NewWriter(id, js, withZip)
	if err != nil {
		return false, err
	}
	pkg := readAll(t)(src.OpenPackage(id))
	if damage {
		pkg = bytes.Clone(pkg)
		pkg[len(pkg)/3] ^= 0x80
	}
	// Two chunks, as a stream would deliver them.
	for _, c := range [][]byte{pkg[:len(pkg)/2], pkg[len(pkg)/2:]} {
		if err := w.Write(PartPackage, c); err != nil {
			w.Abort()
			return false, err
		}
	}
	if withZip {
		if err := w.Write(PartZip, readAll(t)(src.OpenZip(id))); err != nil {
			w.Abort()
			return false, err
		}
	}
	return w.Commit()
}

func TestPutAndReadBack(t *testing.T) {
	s := testStore(t, 0)
	z := testZip(t, 1)
	m, err := s.Put(context.Background(), z)
	if err != nil {
		t.Fatal(err)
	}
	id := IDOf(z)
	if m.ZipSHA256Hex != id || !s.Has(id) || !s.HasZip(id) {
		t.Fatalf("stored blob: manifest %s, has %v, has zip %v", m.ZipSHA256Hex, s.Has(id), s.HasZip(id))
	}
	if got := readAll(t)(s.OpenZip(id)); !bytes.Equal(got, z) {
		t.Fatal("OpenZip does not return the uploaded zip byte for byte")
	}
	if err := s.Verify(id); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.List(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("List = %v", ids)
	}
	if _, err := s.Put(context.Background(), []byte("not a zip")); !errors.Is(err, codepkg.ErrCorrupt) {
		t.Fatalf("bad archive: %v", err)
	}
	if ids, _ := s.List(); len(ids) != 1 {
		t.Fatalf("a refused archive left a blob: %v", ids)
	}
	if err := s.Delete(id); err != nil || s.Has(id) {
		t.Fatalf("delete: %v, still there %v", err, s.Has(id))
	}
}

func TestWriterVerifiesWhatArrives(t *testing.T) {
	src, dst := testStore(t, 0), testStore(t, 0)
	z := testZip(t, 2, 5000, 70000)
	if _, err := src.Put(context.Background(), z); err != nil {
		t.Fatal(err)
	}
	id := IDOf(z)

	if _, err := copyTo(t, src, dst, id, true, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged package: %v, want ErrCorrupt", err)
	}
	if dst.Has(id) {
		t.Fatal("a damaged transfer became visible")
	}
	js, _ := src.ManifestJSON(id)
	if _, err := dst.NewWriter(IDOf([]byte("other")), js, true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("manifest of another blob: %v, want ErrInvalid", err)
	}
	w, _ := dst.NewWriter(id, js, true)
	if err := w.Write(PartZip, z); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zip before package: %v, want ErrInvalid", err)
	}
	w.Abort()
	w, _ = dst.NewWriter(id, js, true)
	if err := w.Write(PartPackage, readAll(t)(src.OpenPackage(id))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("commit without the announced zip: %v, want ErrCorrupt", err)
	}

	// A cached copy (no zip), then the complete blob.
	if created, err := copyTo(t, src, dst, id, false, false); err != nil || !created {
		t.Fatalf("cached copy: created %v, %v", created, err)
	}
	if !dst.Has(id) || dst.HasZip(id) {
		t.Fatal("cached copy should hold the package only")
	}
	if _, _, err := dst.OpenZip(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zip of a cached copy: %v", err)
	}
	if created, err := copyTo(t, src, dst, id, true, false); err != nil || !created {
		t.Fatalf("completing the copy: created %v, %v", created, err)
	}
	if created, err := copyTo(t, src, dst, id, true, false); err != nil || created {
		t.Fatalf("copy of a complete blob: created %v, %v", created, err)
	}
	if got := readAll(t)(dst.OpenZip(id)); !bytes.Equal(got, z) {
		t.Fatal("replica's zip differs from the original")
	}
	if err := dst.Verify(id); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dst.cfg.Dir, "tmp")); len(ents) != 0 {
		t.Fatalf("%d temporary entries left behind", len(ents))
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	for _, name := range []string{packageFile, zipFile, manifestFile} {
		t.Run(name, func(t *testing.T) {
			s := testStore(t, 0)
			z := testZip(t, 3, 20000)
			if _, err := s.Put(context.Background(), z); err != nil {
				t.Fatal(err)
			}
			id := IDOf(z)
			flip(t, s, id, name)
			if err := s.Verify(id); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify after a flipped byte in %s: %v", name, err)
			}
			_, _, err := s.Acquire(context.Background(), id)
			if name == zipFile {
				if err != nil {
					t.Fatalf("the zip is not needed to run: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Acquire of a corrupt blob: %v, want ErrCorrupt", err)
			}
			if u := s.Usage(); u.Trees != 0 {
				t.Fatal("a corrupt package was unpacked")
			}
		})
	}
}

// unpackCounter is a slog handler that counts the store's "unpacked code"
// records: one per unpack that ran.
type unpackCounter struct {
	mu *sync.Mutex
	n  *int
}

func (c unpackCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c unpackCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c unpackCounter) WithGroup(string) slog.Handler            { return c }
func (c unpackCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "unpacked code" {
		c.mu.Lock()
		*c.n++
		c.mu.Unlock()
	}
	return nil
}

func TestAcquireSharesOneUnpack(t *testing.T) {
	var mu sync.Mutex
	unpacks := 0
	s, err := Open(Config{Dir: t.TempDir(), Limits: codepkg.DefaultLimits(),
		Logger: slog.New(unpackCounter{mu: &mu, n: &unpacks})})
	if err != nil {
		t.Fatal(err)
	}
	z := testZip(t, 4, 100, 200)
	if _, err := s.Put(context.Background(), z); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	dirs := make([]string, 20)
	releases := make([]func(), 20)
	for i := range dirs {
		wg.Go(func() {
			dir, rel, err := s.Acquire(context.Background(), IDOf(z))
			if err != nil {
				t.Error(err)
				return
			}
			dirs[i], releases[i] = dir, rel
		})
	}
	wg.Wait()
	for _, d := range dirs {
		if d != dirs[0] {
			t.Fatalf("different trees: %s and %s", d, dirs[0])
		}
	}
	if u := s.Usage(); u.Trees != 1 || u.TreesInUse != 1 {
		t.Fatalf("usage = %+v", u)
	}
	mu.Lock()
	if unpacks != 1 {
		t.Fatalf("%d unpacks for 20 concurrent Acquires of one blob, want 1", unpacks)
	}
	mu.Unlock()
	for _, r := range releases {
		r()
		r() // release is idempotent
	}
	if u := s.Usage(); u.TreesInUse != 0 {
		t.Fatalf("usage after release = %+v", u)
	}
}

func TestEvictTrees(t *testing.T) {
	s := testStore(t, 0)
	var ids []string
	for i := range 4 {
		z := testZip(t, 10+i, 10000)
		if _, err := s.Put(context.Background(), z); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, IDOf(z))
	}
	acquire := func(id string) (string, func()) {
		dir, rel, err := s.Acquire(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return dir, rel
	}
	// Use order: 0 (held), 1, 2, 3; then delete blob 3 (its tree is an orphan).
	dir0, rel0 := acquire(ids[0])
	var dirs []string
	for _, id := range ids[1:] {
		d, rel := acquire(id)
		rel()
		dirs = append(dirs, d)
	}
	if err := s.Delete(ids[3]); err != nil {
		t.Fatal(err)
	}
	size := s.Usage().TreeBytes / 4

	if n, err := s.EvictTrees(0); err != nil || n != 1 {
		t.Fatalf("orphan eviction removed %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(dirs[2]); !os.IsNotExist(err) {
		t.Fatal("the orphan tree is still there")
	}
	// Budget for two trees: the held tree 0 stays, tree 1 (least recently
	// used of the idle ones) goes, tree 2 stays.
	if n, err := s.EvictTrees(2 * size); err != nil || n != 1 {
		t.Fatalf("budget eviction removed %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Fatal("least recently used tree survived")
	}
	if _, err := os.Stat(dirs[1]); err != nil {
		t.Fatal("more recently used tree evicted")
	}
	// Nothing idle fits a zero-ish budget but the held tree stays.
	if _, err := s.EvictTrees(1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir0, "pkg", "file0.py")); err != nil {
		t.Fatalf("a tree in use was evicted: %v", err)
	}
	rel0()
	// An evicted tree is unpacked again on demand.
	d, rel := acquire(ids[1])
	defer rel()
	if _, err := os.Stat(filepath.Join(d, "pkg", "file0.py")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	s := testStore(t, 0)
	z := testZip(t, 5)
	if _, err := s.Put(context.Background(), z); err != nil {
		t.Fatal(err)
	}
	dir, rel, err := s.Acquire(context.Background(), IDOf(z))
	if err != nil {
		t.Fatal(err)
	}
	rel()
	// A crash mid-unpack leaves a read-only temporary tree.
	left := filepath.Join(s.cfg.UnpackedDir, "."+filepath.Base(dir)+".unpack-123")
	if err := os.MkdirAll(filepath.Join(left, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(left, "sub", "f"), []byte("x"), 0o444)
	os.Chmod(filepath.Join(left, "sub"), 0o555)
	os.Chmod(left, 0o555)
	os.WriteFile(filepath.Join(s.cfg.Dir, "tmp", "partial"), []byte("x"), 0o600)

	again, err := Open(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("leftover unpack dir survived Open: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.cfg.Dir, "tmp")); len(ents) != 0 {
		t.Fatal("tmp not emptied")
	}
	if u := again.Usage(); u.Trees != 1 || u.TreeBytes == 0 || u.Blobs != 1 {
		t.Fatalf("usage after reopen = %+v", u)
	}
}

func TestUnpackedDirElsewhere(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "trees")
	s, err := Open(Config{Dir: t.TempDir(), UnpackedDir: elsewhere, Limits: codepkg.DefaultLimits(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	z := testZip(t, 6)
	if _, err := s.Put(context.Background(), z); err != nil {
		t.Fatal(err)
	}
	dir, rel, err := s.Acquire(context.Background(), IDOf(z))
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if filepath.Dir(dir) != elsewhere {
		t.Fatalf("tree at %s, want under %s", dir, elsewhere)
	}
	if _, err := os.Stat(filepath.Join(dir, "pkg", "file0.py")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(IDOf(z)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EvictTrees(0); err != nil || n != 1 {
		t.Fatalf("evicted %d (%v), want the orphan tree", n, err)
	}
}
