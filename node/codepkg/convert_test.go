package codepkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConvertRefuses(t *testing.T) {
	for _, tc := range refusedArchives() {
		t.Run(tc.name, func(t *testing.T) {
			limits := DefaultLimits()
			if tc.limits != nil {
				tc.limits(&limits)
			}
			var out bytes.Buffer
			m, err := ConvertBytes(tc.zip(t), limits, &out)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Convert = %v, %v; want a *Error of kind %s", m, err, tc.kind)
			}
			if ce.Kind != tc.kind {
				t.Fatalf("kind %s (%s), want %s", ce.Kind, ce.Message, tc.kind)
			}
			if !errors.Is(err, tc.kind.Sentinel()) {
				t.Fatalf("errors.Is(err, %v) = false", tc.kind.Sentinel())
			}
			if !strings.Contains(ce.Message, tc.msg) {
				t.Fatalf("message %q, want it to contain %q", ce.Message, tc.msg)
			}
			if m != nil {
				t.Fatalf("refused zip returned a manifest")
			}
		})
	}
}

// TestConvertStopsAtRealBytes: a header claiming 1000 bytes over data that
// inflates to 16 MiB is stopped after one read buffer, not after 16 MiB.
func TestConvertStopsAtRealBytes(t *testing.T) {
	z := lyingZip(t, 1000, 16<<20)
	var out countingWriter
	_, err := ConvertBytes(z, DefaultLimits(), &out)
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("Convert: %v, want ErrSizeMismatch", err)
	}
	// The tar.zst of at most 1000 declared bytes plus headers is tiny; a
	// converter that trusted the header for copying would have produced
	// (compressed) megabytes, one that ignored it would inflate 16 MiB.
	if out.n > 64<<10 {
		t.Fatalf("Convert wrote %d bytes before refusing", out.n)
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// pythonTree is a small function package shaped like a real Python one.
func pythonTree() []zent {
	pyc := time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)
	return []zent{
		file("lambda_function.py", "import json\n\ndef handler(event, context):\n    return {'ok': True}\n"),
		dir("lib/"),
		dir("lib/python3.12/site-packages/"),
		file("lib/python3.12/site-packages/requests/__init__.py", "from .api import get\n"),
		file("lib/python3.12/site-packages/requests/api.py", strings.Repeat("def get(url):\n    pass\n", 300)),
		zent{name: "lib/python3.12/site-packages/requests/__pycache__/api.cpython-312.pyc", unixMode: sIFREG | 0o644, data: "\x0b\x0d\x0d\x0a fake pyc", mtime: pyc},
		exe("bin/bootstrap", "#!/bin/sh\nexec python3 -m awslambdaric \"$_HANDLER\"\n"),
		file("./data//config.json", `{"stage":"prod"}`),
		link("lib/python3.12/site-packages/req", "requests"),
		link("bin/handler.py", "../lambda_function.py"),
		link("current", "lib/python3.12"),
		link("dangling", "not/there/yet"),
		zent{name: "windows-made.txt", data: "no unix attributes"},
		file("empty.txt", ""),
		zent{name: "shared/", unixMode: sIFDIR | sISGID | 0o775},
		exe("lib/native/_speedups.cpython-312-x86_64-linux-gnu.so", "\x7fELF\x02\x01\x01"+strings.Repeat("\x00\x48\x89\xe5", 5000)),
	}
}

func TestConvertManifest(t *testing.T) {
	z := buildZip(t, pythonTree()...)
	var out bytes.Buffer
	m, err := ConvertBytes(z, DefaultLimits(), &out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(z)
	if m.CodeSha256 != base64.StdEncoding.EncodeToString(sum[:]) || m.ZipSHA256Hex != hex.EncodeToString(sum[:]) || m.ZipSize != int64(len(z)) {
		t.Fatalf("zip identity: %s %s %d", m.CodeSha256, m.ZipSHA256Hex, m.ZipSize)
	}
	tsum := sha256.Sum256(out.Bytes())
	if m.TarZstSHA256Hex != hex.EncodeToString(tsum[:]) || m.TarZstSize != int64(out.Len()) {
		t.Fatalf("package identity: %s %d, wrote %x %d", m.TarZstSHA256Hex, m.TarZstSize, tsum, out.Len())
	}
	byPath := map[string]File{}
	var total int64
	prev := ""
	for _, f := range m.Files {
		if f.Path <= prev && prev != "" {
			t.Fatalf("Files not sorted: %q after %q", f.Path, prev)
		}
		prev = f.Path
		byPath[f.Path] = f
		if f.Type != TypeDir {
			total += f.Size
		}
	}
	if m.UnpackedSize != total {
		t.Fatalf("UnpackedSize %d, files sum to %d", m.UnpackedSize, total)
	}
	want := map[string]File{
		"lambda_function.py": {Type: TypeFile, Mode: 0o644, Size: 66},
		"bin":                {Type: TypeDir, Mode: 0o755}, // implied
		"bin/bootstrap":      {Type: TypeFile, Mode: 0o755, Size: 51},
		"data/config.json":   {Type: TypeFile, Mode: 0o644, Size: 16},
		"bin/handler.py":     {Type: TypeSymlink, Mode: 0o777, Size: 21, LinkTarget: "../lambda_function.py"},
		"windows-made.txt":   {Type: TypeFile, Mode: 0o644, Size: 18},
		"empty.txt":          {Type: TypeFile, Mode: 0o644},
		"lib/python3.12/site-packages/requests/__pycache__": {Type: TypeDir, Mode: 0o755},
		"shared": {Type: TypeDir, Mode: 0o755}, // setgid dropped
	}
	for p, w := range want {
		w.Path = p
		if got := byPath[p]; got != w {
			t.Errorf("%s: %+v, want %+v", p, got, w)
		}
	}
	// 16 entries and the 6 directories they only imply.
	if len(m.Files) != 22 {
		t.Errorf("%d files, want 22: %v", len(m.Files), m.Files)
	}
}

// TestConvertDeterministic: the same zip gives the same bytes, and so does
// the same tree zipped in another order (the package does not depend on
// entry order).
func TestConvertDeterministic(t *testing.T) {
	tree := pythonTree()
	reversed := make([]zent, len(tree))
	for i, e := range tree {
		reversed[len(tree)-1-i] = e
	}
	z1, z2 := buildZip(t, tree...), buildZip(t, reversed...)
	if bytes.Equal(z1, z2) {
		t.Fatal("the two zips should differ")
	}
	var outs [3]bytes.Buffer
	var ms [3]*Manifest
	for i, z := range [][]byte{z1, z1, z2} {
		m, err := ConvertBytes(z, DefaultLimits(), &outs[i])
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
	}
	for i := 1; i < 3; i++ {
		if !bytes.Equal(outs[0].Bytes(), outs[i].Bytes()) || ms[0].TarZstSHA256Hex != ms[i].TarZstSHA256Hex {
			t.Fatalf("conversion %d differs: %s vs %s", i, ms[0].TarZstSHA256Hex, ms[i].TarZstSHA256Hex)
		}
	}
	if ms[0].CodeSha256 == ms[2].CodeSha256 {
		t.Fatal("different zips got the same CodeSha256")
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	if l := DefaultLimits(); l.MaxZipBytes != 52_428_800 || l.MaxUnzippedBytes != 262_144_000 {
		t.Fatalf("DefaultLimits = %+v, want Lambda's 50 MB / 250 MB", l)
	}
	err := Limits{MaxCompressionRatio: 1, RatioFloorBytes: -1}.Validate()
	for _, f := range []string{"MaxZipBytes", "MaxUnzippedBytes", "MaxFiles", "MaxCompressionRatio", "RatioFloorBytes"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate() = %v, want it to name %s", err, f)
		}
	}
	if _, err := ConvertBytes(buildZip(t, file("a", "b")), Limits{}, &bytes.Buffer{}); err == nil {
		t.Fatal("Convert accepted zero Limits")
	}
}
