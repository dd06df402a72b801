package codepkg

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/node/codepkg/codepkgtest"
)

// The benchmarks compare unpacking a package (tar.zst) with extracting the
// original zip with archive/zip, on a generated tree shaped like a Python
// Lambda's dependencies (codepkgtest.PythonDeps): thousands of .py modules
// of varied size, a few dozen shared objects, metadata and data files.
//
//	go test -run '^$' -bench . -benchtime 10x ./node/codepkg

var (
	benchOnce          sync.Once
	benchZip, benchPkg []byte
	benchManifest      *Manifest
	benchTreeBytes     int64
	benchFiles         int
)

func loadBench(b *testing.B) {
	benchOnce.Do(func() {
		var err error
		if benchZip, err = codepkgtest.Zip(codepkgtest.PythonDeps(1)...); err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		m, err := ConvertBytes(benchZip, DefaultLimits(), &out)
		if err != nil {
			b.Fatal(err)
		}
		benchPkg, benchManifest = out.Bytes(), m
		benchTreeBytes = m.UnpackedSize
		for _, f := range m.Files {
			if f.Type == TypeFile {
				benchFiles++
			}
		}
	})
	if benchManifest == nil {
		b.Fatal("benchmark package not generated")
	}
}

// extractZip is the baseline: what a plain archive/zip extractor does,
// doing the same file-system work as Unpack (create with the final mode,
// write through a 256 KiB buffer, set the mtime, one syncfs) minus the
// checks and the read-only directories.
func extractZip(zipBytes []byte, dest string) error {
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for _, f := range zr.File {
		p := filepath.Join(dest, filepath.FromSlash(path.Clean(f.Name)))
		if strings.HasSuffix(f.Name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		if f.Mode()&os.ModeSymlink != 0 {
			target, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if err := os.Symlink(string(target), p); err != nil {
				return err
			}
			continue
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.Mode().Perm()&^0o222)
		if err != nil {
			rc.Close()
			return err
		}
		_, err = io.CopyBuffer(writerOnly{w}, rc, buf)
		rc.Close()
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := os.Chtimes(p, f.Modified, f.Modified); err != nil {
			return err
		}
	}
	return syncFS(dest)
}

// BenchmarkUnpack extracts the same tree from its zip (archive/zip) and from
// its package (Unpack) in every iteration, alternating which goes first,
// and reports both times and their ratio.
func BenchmarkUnpack(b *testing.B) {
	loadBench(b)
	// STOKE_BENCH_DIR picks the file system (a node's data disk, a tmpfs);
	// the default is the test's temporary directory.
	root := b.TempDir()
	if d := os.Getenv("STOKE_BENCH_DIR"); d != "" {
		var err error
		if root, err = os.MkdirTemp(d, "stoke-bench-*"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(root) })
	}
	var zipDur, zstDur time.Duration
	b.ResetTimer()
	for i := range b.N {
		zd, pd := filepath.Join(root, fmt.Sprint("zip", i)), filepath.Join(root, fmt.Sprint("pkg", i))
		runZip := func() {
			t0 := time.Now()
			if err := extractZip(benchZip, zd); err != nil {
				b.Fatal(err)
			}
			zipDur += time.Since(t0)
		}
		runPkg := func() {
			t0 := time.Now()
			if err := Unpack(context.Background(), bytes.NewReader(benchPkg), pd, benchManifest.TarZstSHA256Hex); err != nil {
				b.Fatal(err)
			}
			zstDur += time.Since(t0)
		}
		if i%2 == 0 {
			runZip()
			runPkg()
		} else {
			runPkg()
			runZip()
		}
		b.StopTimer()
		RemoveTree(zd)
		RemoveTree(pd)
		b.StartTimer()
	}
	reportSizes(b)
	b.ReportMetric(float64(zipDur.Milliseconds())/float64(b.N), "zip-ms/op")
	b.ReportMetric(float64(zstDur.Milliseconds())/float64(b.N), "tarzst-ms/op")
	b.ReportMetric(float64(zipDur)/float64(zstDur), "speedup")
}

// BenchmarkDecode measures decompression alone (no file system): every
// entry of the zip read through archive/zip, against the tar.zst read
// through zstd and archive/tar, in the same iteration.
func BenchmarkDecode(b *testing.B) {
	loadBench(b)
	var zipDur, zstDur time.Duration
	for range b.N {
		t0 := time.Now()
		zr, err := zip.NewReader(bytes.NewReader(benchZip), int64(len(benchZip)))
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
		zipDur += time.Since(t0)

		t0 = time.Now()
		dec, err := newDecoder(bytes.NewReader(benchPkg))
		if err != nil {
			b.Fatal(err)
		}
		tr := tar.NewReader(dec)
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				b.Fatal(err)
			}
		}
		dec.Close()
		zstDur += time.Since(t0)
	}
	reportSizes(b)
	b.ReportMetric(float64(zipDur.Microseconds())/1000/float64(b.N), "zip-ms/op")
	b.ReportMetric(float64(zstDur.Microseconds())/1000/float64(b.N), "tarzst-ms/op")
	b.ReportMetric(float64(zipDur)/float64(zstDur), "speedup")
}

// BenchmarkConvert is the one-off cost paid at upload.
func BenchmarkConvert(b *testing.B) {
	loadBench(b)
	b.SetBytes(int64(len(benchZip)))
	for range b.N {
		if _, err := ConvertBytes(benchZip, DefaultLimits(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func reportSizes(b *testing.B) {
	b.ReportMetric(float64(benchTreeBytes)/1e6, "tree-MB")
	b.ReportMetric(float64(benchFiles), "files")
	b.ReportMetric(float64(len(benchZip))/1e6, "zip-MB")
	b.ReportMetric(float64(len(benchPkg))/1e6, "tarzst-MB")
}
