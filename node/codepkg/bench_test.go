package codepkg

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The benchmarks compare unpacking a package (tar.zst) with extracting the
// original zip with archive/zip, on a generated tree shaped like a Python
// Lambda's dependencies: thousands of .py modules of varied size, a few
// dozen shared objects, metadata and data files.
//
//	go test -run '^$' -bench . -benchtime 10x ./node/codepkg

var (
	benchOnce          sync.Once
	benchZip, benchPkg []byte
	benchManifest      *Manifest
	benchTreeBytes     int64
	benchFiles         int
)

// pyWords is the vocabulary of the generated Python source.
var pyWords = strings.Fields(`self return if else elif for in while import from as def class
	None True False not and or is try except raise with yield lambda pass break continue
	value key data result response request session client config path name items kwargs
	args options error message buffer stream index offset length count default params
	headers body status token cache context handler event record table column schema`)

// pyModule writes Python-looking source of about n bytes.
func pyModule(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("# -*- coding: utf-8 -*-\n\"\"\"Generated module for Stoke's unpack benchmark.\"\"\"\n\nimport os\nimport sys\nfrom typing import Any, Optional\n\n")
	word := func() string { return pyWords[r.IntN(len(pyWords))] }
	ident := func() string { return word() + "_" + word() }
	for b.Len() < n {
		switch r.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "\nclass %s%s(object):\n    \"\"\"%s the %s of %s.\"\"\"\n\n    def __init__(self, %s=None, **kwargs):\n        self.%s = %s\n\n",
				strings.ToUpper(word()[:1]), ident(), word(), word(), ident(), ident(), ident(), word())
		default:
			fmt.Fprintf(&b, "def %s(%s, %s=%d):\n", ident(), ident(), ident(), r.IntN(1000))
			for range 2 + r.IntN(8) {
				switch r.IntN(4) {
				case 0:
					fmt.Fprintf(&b, "    if %s is not None and %s:\n        return %s(%s)\n", ident(), word(), ident(), ident())
				case 1:
					fmt.Fprintf(&b, "    for %s in %s.%s():\n        %s[%s] = %q\n", word(), ident(), word(), ident(), word(), ident())
				case 2:
					fmt.Fprintf(&b, "    %s = %s.get(%q, %d)\n", ident(), word(), ident(), r.IntN(1<<16))
				default:
					fmt.Fprintf(&b, "    raise ValueError(\"invalid %s: %%r\" %% (%s,))\n", ident(), word())
				}
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// sharedObject writes an ELF-shaped blob of about n bytes: machine-code-like
// sections built from common x86-64 instruction patterns with random
// operands, a string table of symbol names, and zero padding. It deflates
// about 2-3:1, like real extension modules.
func sharedObject(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("\x7fELF\x02\x01\x01\x00")
	b.Write(make([]byte, 56))
	ops := [][]byte{{0x48, 0x89, 0xe5}, {0x55}, {0xc3}, {0x48, 0x83, 0xec}, {0xe8}, {0x48, 0x8b, 0x45}, {0x0f, 0x1f, 0x44, 0x00, 0x00}, {0x74}, {0x75}, {0x48, 0x8d, 0x05}, {0x89, 0xc7}, {0x31, 0xc0}}
	for b.Len() < n*7/10 {
		b.Write(ops[r.IntN(len(ops))])
		for range r.IntN(5) {
			b.WriteByte(byte(r.IntN(256)))
		}
	}
	for b.Len() < n*9/10 {
		fmt.Fprintf(&b, "_Py%s_%s%d\x00", strings.ToUpper(pyWords[r.IntN(len(pyWords))][:1])+pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], r.IntN(100))
	}
	b.Write(make([]byte, n-b.Len()))
	return b.Bytes()
}

// benchTree generates the tree as zip entries (about 50 MB unpacked).
func benchTree() []zent {
	r := rand.New(rand.NewPCG(1, 2))
	var ents []zent
	pkgs := []string{"boto3", "botocore", "requests", "urllib3", "numpy", "pandas", "pydantic", "dateutil", "jmespath", "s3transfer", "certifi", "idna", "charset_normalizer", "yaml", "six", "pytz", "attrs", "jinja2", "markupsafe", "click", "sqlalchemy", "psycopg2", "cryptography", "cffi"}
	for _, p := range pkgs {
		ents = append(ents, dir(p+"/"))
		subs := []string{"", "core/", "utils/", "tests/", "_internal/", "compat/"}
		for i := range 40 + r.IntN(120) {
			sub := subs[r.IntN(len(subs))]
			// Log-uniform sizes from 200 B to 80 KB, like real modules.
			size := int(200 * math.Pow(400, r.Float64()))
			name := fmt.Sprintf("%s/%smodule_%03d.py", p, sub, i)
			if i == 0 {
				name = p + "/" + sub + "__init__.py"
			}
			ents = append(ents, file(name, string(pyModule(r, size))))
		}
		ents = append(ents, file(p+"-1.0.dist-info/METADATA", string(pyModule(r, 3000))), file(p+"-1.0.dist-info/RECORD", strings.Repeat(p+"/module.py,sha256=abc,1234\n", 80)))
		if r.IntN(3) == 0 {
			for j := range 1 + r.IntN(3) {
				size := 200_000 + r.IntN(1_200_000)
				ents = append(ents, exe(fmt.Sprintf("%s/_native%d.cpython-312-x86_64-linux-gnu.so", p, j), string(sharedObject(r, size))))
			}
		}
	}
	// Service-model JSON, as botocore ships (large, very compressible).
	for i := range 60 {
		var j bytes.Buffer
		j.WriteString("{\n  \"version\": \"2.0\",\n  \"operations\": {\n")
		for j.Len() < 40_000+r.IntN(100_000) {
			fmt.Fprintf(&j, "    \"%s%s\": {\"name\": \"%s\", \"http\": {\"method\": \"POST\", \"requestUri\": \"/%s\"}, \"input\": {\"shape\": \"%sRequest\"}},\n", pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))])
		}
		j.WriteString("  }\n}\n")
		ents = append(ents, file(fmt.Sprintf("botocore/data/service%02d/2015-03-31/service-2.json", i), j.String()))
	}
	ents = append(ents, link("bin/python-handler", "../boto3/__init__.py"))
	return ents
}

func loadBench(b *testing.B) {
	benchOnce.Do(func() {
		ents := benchTree()
		benchZip = buildZip(b, ents...)
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
