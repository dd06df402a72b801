package codepkg

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// convertTree converts the zip of entries, failing the test on refusal.
func convertTree(t testing.TB, entries ...zent) ([]byte, *Manifest) {
	t.Helper()
	var out bytes.Buffer
	m, err := ConvertBytes(buildZip(t, entries...), DefaultLimits(), &out)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), m
}

// treeOf describes what is on disk under root, one line per path.
type diskEntry struct {
	mode   fs.FileMode
	data   string
	target string
	mtime  time.Time
}

func treeOf(t testing.TB, root string) map[string]diskEntry {
	t.Helper()
	tree := map[string]diskEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := diskEntry{mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.target, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			e.data, e.mtime = string(b), fi.ModTime().UTC()
		}
		tree[filepath.ToSlash(rel)] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestRoundTrip: zip -> tar.zst -> Unpack gives the same files, contents,
// symlinks and (read-only) modes, and the file mtimes of the zip.
func TestRoundTrip(t *testing.T) {
	tree := pythonTree()
	pkg, m := convertTree(t, tree...)
	dest := filepath.Join(t.TempDir(), "code", m.TarZstSHA256Hex)
	if err := Unpack(context.Background(), bytes.NewReader(pkg), dest, m.TarZstSHA256Hex); err != nil {
		t.Fatal(err)
	}
	got := treeOf(t, dest)
	if root := got["."]; root.mode != fs.ModeDir|0o555 {
		t.Errorf("root mode %v, want dr-xr-xr-x", root.mode)
	}
	delete(got, ".")
	if len(got) != len(m.Files) {
		t.Errorf("%d paths on disk, manifest lists %d", len(got), len(m.Files))
	}
	for _, f := range m.Files {
		d, ok := got[f.Path]
		if !ok {
			t.Errorf("%s missing on disk", f.Path)
			continue
		}
		var want fs.FileMode
		switch f.Type {
		case TypeDir:
			want = fs.ModeDir | 0o555
		case TypeFile:
			want = 0o444 | f.Mode&0o111
		case TypeSymlink:
			want = fs.ModeSymlink | 0o777
		}
		if d.mode != want {
			t.Errorf("%s: mode %v, want %v", f.Path, d.mode, want)
		}
		if f.Type == TypeSymlink && d.target != f.LinkTarget {
			t.Errorf("%s: target %q, want %q", f.Path, d.target, f.LinkTarget)
		}
	}
	for _, e := range tree {
		clean, _, _ := cleanName(e.name)
		d := got[clean]
		switch {
		case e.unixMode&sIFLNK == sIFLNK:
			if d.target != e.data {
				t.Errorf("%s: target %q, want %q", clean, d.target, e.data)
			}
		case strings.HasSuffix(e.name, "/"):
		default:
			if d.data != e.data {
				t.Errorf("%s: content differs (%d bytes, want %d)", clean, len(d.data), len(e.data))
			}
			wantTime := zipTime
			if !e.mtime.IsZero() {
				wantTime = e.mtime
			}
			if !d.mtime.Equal(wantTime) {
				t.Errorf("%s: mtime %v, want %v", clean, d.mtime, wantTime)
			}
		}
	}
	// Symlinks work on disk.
	if b, err := os.ReadFile(filepath.Join(dest, "bin", "handler.py")); err != nil || !strings.Contains(string(b), "def handler") {
		t.Errorf("reading through bin/handler.py: %q, %v", b, err)
	}
	assertNoTemp(t, filepath.Dir(dest))
}

// assertNoTemp fails if Unpack left a temporary directory in parent.
func assertNoTemp(t testing.TB, parent string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), tempInfix) {
			t.Errorf("temporary directory %s left behind", e.Name())
		}
	}
}

func TestUnpackRefusesBadChecksum(t *testing.T) {
	pkg, m := convertTree(t, pythonTree()...)
	corrupt := bytes.Clone(pkg)
	corrupt[len(corrupt)/2] ^= 0x01
	tests := []struct {
		name   string
		stream []byte
		sum    string
		want   error
	}{
		{"wrong expected checksum", pkg, strings.Repeat("ab", 32), ErrChecksumMismatch},
		{"trailing garbage", append(bytes.Clone(pkg), "tail"...), m.TarZstSHA256Hex, nil},
		{"flipped bit", corrupt, m.TarZstSHA256Hex, nil},
		{"truncated", pkg[:len(pkg)-10], m.TarZstSHA256Hex, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "pkg")
			err := Unpack(context.Background(), bytes.NewReader(tc.stream), dest, tc.sum)
			if err == nil {
				t.Fatal("Unpack accepted a bad package")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Unpack: %v, want %v", err, tc.want)
			}
			if !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrBadPackage) {
				t.Fatalf("Unpack: %v matches neither ErrChecksumMismatch nor ErrBadPackage", err)
			}
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("dest exists after a refused Unpack: %v", err)
			}
			assertNoTemp(t, parent)
		})
	}
	if err := Unpack(context.Background(), bytes.NewReader(pkg), filepath.Join(t.TempDir(), "x"), "not-hex"); err == nil {
		t.Fatal("Unpack accepted a malformed expected checksum")
	}
}

// tarEntry describes one entry of a hand-made (possibly malicious) tar.
type tarEntry struct {
	name     string
	typ      byte
	data     string
	linkname string
}

// handMadePackage writes entries verbatim, bypassing Convert, and returns
// the tar.zst with its checksum: what an attacker who could plant a blob
// (with a matching manifest) would hand Unpack.
func handMadePackage(t testing.TB, entries ...tarEntry) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.data)), Linkname: e.linkname, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.data))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes(), sha256Hex(buf.Bytes())
}

func TestUnpackRefusesMaliciousTar(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"parent traversal", []tarEntry{{name: "../escaped", typ: tar.TypeReg, data: "x"}}},
		{"absolute", []tarEntry{{name: "/tmp/escaped", typ: tar.TypeReg, data: "x"}}},
		{"unclean", []tarEntry{{name: "a/./b", typ: tar.TypeReg}}},
		{"missing parent", []tarEntry{{name: "a/b", typ: tar.TypeReg, data: "x"}}},
		{"write through symlink", []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: ".."}, {name: "l/escaped", typ: tar.TypeReg, data: "x"}}},
		{"escaping symlink", []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: "../../etc"}}},
		{"symlink escaping through a symlink", []tarEntry{{name: "h", typ: tar.TypeSymlink, linkname: "."}, {name: "l", typ: tar.TypeSymlink, linkname: "h/../x"}}},
		{"absolute symlink", []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: "/etc/passwd"}}},
		{"hard link", []tarEntry{{name: "f", typ: tar.TypeReg, data: "x"}, {name: "h", typ: tar.TypeLink, linkname: "f"}}},
		{"device", []tarEntry{{name: "null", typ: tar.TypeChar}}},
		{"fifo", []tarEntry{{name: "p", typ: tar.TypeFifo}}},
		{"duplicate", []tarEntry{{name: "f", typ: tar.TypeReg, data: "x"}, {name: "f", typ: tar.TypeReg, data: "y"}}},
		{"backslash", []tarEntry{{name: `..\escaped`, typ: tar.TypeReg, data: "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkg, sum := handMadePackage(t, tc.entries...)
			outer := t.TempDir()
			parent := filepath.Join(outer, "blobs")
			dest := filepath.Join(parent, "pkg")
			err := Unpack(context.Background(), bytes.NewReader(pkg), dest, sum)
			if !errors.Is(err, ErrBadPackage) {
				t.Fatalf("Unpack: %v, want ErrBadPackage", err)
			}
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("dest exists: %v", err)
			}
			// Nothing anywhere under outer but the (empty) parent.
			var found []string
			filepath.WalkDir(outer, func(p string, d fs.DirEntry, err error) error {
				if p != outer && p != parent {
					found = append(found, p)
				}
				return nil
			})
			if len(found) > 0 {
				t.Fatalf("left behind: %v", found)
			}
		})
	}
}

// TestUnpackConcurrent: of many Unpacks of one destination exactly one
// publishes; all succeed; the tree is complete; no temporary is left.
func TestUnpackConcurrent(t *testing.T) {
	pkg, m := convertTree(t, pythonTree()...)
	parent := t.TempDir()
	dest := filepath.Join(parent, "pkg")
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan bool, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			won, err := unpack(context.Background(), bytes.NewReader(pkg), dest, m.TarZstSHA256Hex)
			wins <- won
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	won := 0
	for w := range wins {
		if w {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d Unpacks published, want exactly 1", won)
	}
	if got := len(treeOf(t, dest)) - 1; got != len(m.Files) {
		t.Fatalf("%d paths on disk, want %d", got, len(m.Files))
	}
	assertNoTemp(t, parent)
}

// TestUnpackExistingDest: a finished tree is reused without reading r.
func TestUnpackExistingDest(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "pkg")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(context.Background(), failingReader{t}, dest, strings.Repeat("00", 32)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if err := Unpack(context.Background(), failingReader{t}, file, strings.Repeat("00", 32)); err == nil {
		t.Fatal("Unpack onto a regular file succeeded")
	}
}

type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("Unpack read the stream although the destination exists")
	return 0, io.EOF
}

func TestUnpackCancelled(t *testing.T) {
	pkg, m := convertTree(t, pythonTree()...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	err := Unpack(ctx, bytes.NewReader(pkg), filepath.Join(parent, "pkg"), m.TarZstSHA256Hex)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Unpack: %v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestRemoveTree(t *testing.T) {
	pkg, m := convertTree(t, pythonTree()...)
	dest := filepath.Join(t.TempDir(), "pkg")
	if err := Unpack(context.Background(), bytes.NewReader(pkg), dest, m.TarZstSHA256Hex); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(dest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree still there: %v", err)
	}
	if err := RemoveTree(dest); err != nil {
		t.Fatalf("removing a missing tree: %v", err)
	}
}

func TestResolvesInside(t *testing.T) {
	links := map[string]string{"here": ".", "a/up": "..", "loop1": "loop2", "loop2": "loop1", "deep": "a/b/c"}
	tests := []struct {
		link, target string
		want         bool
	}{
		{"x", "y", true},
		{"a/x", "../y", true},
		{"a/x", "../../y", false},
		{"x", "here/../y", false},
		{"x", "here/here/y", true},
		{"b/x", "../a/up/y", true},
		{"b/x", "../a/up/../y", false},
		{"x", "loop1", false},
		{"x", "deep/../../..", true},
		{"x", "deep/../../../..", false},
		{"x", ".", true},
	}
	for _, tc := range tests {
		if got := resolvesInside(tc.link, tc.target, links); got != tc.want {
			t.Errorf("resolvesInside(%q -> %q) = %v, want %v", tc.link, tc.target, got, tc.want)
		}
	}
}

// TestUnpackClassifiesEveryCorruption flips one byte at many offsets of a
// package: whatever the damage does to the zstd and tar layers (a checksum
// mismatch at the end, or a decode failure inside a file's data), Unpack's
// error must say the package is bad, so the blob store refetches it rather
// than report a local failure.
func TestUnpackClassifiesEveryCorruption(t *testing.T) {
	// A large, poorly compressible file puts most of the stream inside one
	// file's data, where a decode failure surfaces while the file is written.
	var big strings.Builder
	for i := 0; big.Len() < 512<<10; i++ {
		fmt.Fprintf(&big, "%d:%x\n", i, i*2654435761)
	}
	pkg, m := convertTree(t, append(pythonTree(), file("big.txt", big.String()))...)
	step := max(len(pkg)/64, 1)
	for off := 0; off < len(pkg); off += step {
		corrupt := bytes.Clone(pkg)
		corrupt[off] ^= 0x5a
		dest := filepath.Join(t.TempDir(), "pkg")
		err := Unpack(context.Background(), bytes.NewReader(corrupt), dest, m.TarZstSHA256Hex)
		if err == nil {
			t.Fatalf("offset %d: a corrupt package unpacked", off)
		}
		if !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrBadPackage) {
			t.Fatalf("offset %d: %v matches neither ErrChecksumMismatch nor ErrBadPackage", off, err)
		}
	}
}
