// Package codepkgtest generates realistic code packages for tests and
// benchmarks: zips shaped like a Python Lambda's dependency tree, built
// deterministically from a seed. It imports nothing from codepkg, so
// codepkg's own tests can use it.
package codepkgtest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// ZipTime is the modification time of generated entries.
var ZipTime = time.Date(2025, 6, 1, 12, 30, 44, 0, time.UTC)

// Unix file type bits as zip stores them in the upper half of ExternalAttrs.
const (
	ModeFile    = 0o100000
	ModeDir     = 0o040000
	ModeSymlink = 0o120000
)

// Entry is one zip entry. Mode holds the Unix type and permission bits;
// 0 means no Unix attributes (an archive made on Windows).
type Entry struct {
	Name string
	Mode uint32
	Data string
	// Stored writes the entry uncompressed instead of deflated.
	Stored bool
}

// File, Exe, Dir and Link build entries.
func File(name, data string) Entry { return Entry{Name: name, Mode: ModeFile | 0o644, Data: data} }
func Exe(name, data string) Entry  { return Entry{Name: name, Mode: ModeFile | 0o755, Data: data} }
func Dir(name string) Entry        { return Entry{Name: name, Mode: ModeDir | 0o755} }
func Link(name, target string) Entry {
	return Entry{Name: name, Mode: ModeSymlink | 0o777, Data: target}
}

// Zip writes entries in order with archive/zip (deflate unless Stored,
// modified at ZipTime, made on Unix when Mode is set).
func Zip(entries ...Entry) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: ZipTime}
		if e.Stored {
			h.Method = zip.Store
		}
		if e.Mode != 0 {
			h.CreatorVersion = 3<<8 | 20 // made on Unix
			h.ExternalAttrs = e.Mode << 16
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(e.Data)); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pyWords is the vocabulary of the generated Python source.
var pyWords = strings.Fields(`self return if else elif for in while import from as def class
	None True False not and or is try except raise with yield lambda pass break continue
	value key data result response request session client config path name items kwargs
	args options error message buffer stream index offset length count default params
	headers body status token cache context handler event record table column schema`)

// PyModule writes Python-looking source of about n bytes.
func PyModule(r *rand.Rand, n int) []byte {
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

// SharedObject writes an ELF-shaped blob of about n bytes: machine-code-like
// sections built from common x86-64 instruction patterns with random
// operands, a string table of symbol names, and zero padding. It deflates
// about 2-3:1, like real extension modules.
func SharedObject(r *rand.Rand, n int) []byte {
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

// PythonDeps generates a tree shaped like a Python Lambda's dependencies:
// 24 packages of .py modules with log-uniform sizes from 200 B to 80 KB,
// dist-info metadata, ELF-shaped extension modules, botocore-style
// service-model JSON and a symlink. At scale 1 it is about 51 MB unpacked
// in 2,726 files (18.7 MB zipped), the tree of codepkg's benchmarks;
// other scales multiply the number of modules, extension modules and
// JSON files (sizes stay realistic). The same scale always gives the
// same entries.
func PythonDeps(scale float64) []Entry {
	r := rand.New(rand.NewPCG(1, 2))
	n := func(k int) int { return max(1, int(math.Round(float64(k)*scale))) }
	// Extension modules and JSON models may round to none at small scales.
	n0 := func(k int) int { return int(math.Round(float64(k) * scale)) }
	var ents []Entry
	pkgs := []string{"boto3", "botocore", "requests", "urllib3", "numpy", "pandas", "pydantic", "dateutil", "jmespath", "s3transfer", "certifi", "idna", "charset_normalizer", "yaml", "six", "pytz", "attrs", "jinja2", "markupsafe", "click", "sqlalchemy", "psycopg2", "cryptography", "cffi"}
	for _, p := range pkgs {
		ents = append(ents, Dir(p+"/"))
		subs := []string{"", "core/", "utils/", "tests/", "_internal/", "compat/"}
		for i := range n(40 + r.IntN(120)) {
			sub := subs[r.IntN(len(subs))]
			// Log-uniform sizes from 200 B to 80 KB, like real modules.
			size := int(200 * math.Pow(400, r.Float64()))
			name := fmt.Sprintf("%s/%smodule_%03d.py", p, sub, i)
			if i == 0 {
				name = p + "/" + sub + "__init__.py"
			}
			ents = append(ents, File(name, string(PyModule(r, size))))
		}
		ents = append(ents, File(p+"-1.0.dist-info/METADATA", string(PyModule(r, 3000))), File(p+"-1.0.dist-info/RECORD", strings.Repeat(p+"/module.py,sha256=abc,1234\n", 80)))
		if r.IntN(3) == 0 {
			for j := range n0(1 + r.IntN(3)) {
				size := 200_000 + r.IntN(1_200_000)
				ents = append(ents, Exe(fmt.Sprintf("%s/_native%d.cpython-312-x86_64-linux-gnu.so", p, j), string(SharedObject(r, size))))
			}
		}
	}
	// Service-model JSON, as botocore ships (large, very compressible).
	for i := range n0(60) {
		var j bytes.Buffer
		j.WriteString("{\n  \"version\": \"2.0\",\n  \"operations\": {\n")
		for j.Len() < 40_000+r.IntN(100_000) {
			fmt.Fprintf(&j, "    \"%s%s\": {\"name\": \"%s\", \"http\": {\"method\": \"POST\", \"requestUri\": \"/%s\"}, \"input\": {\"shape\": \"%sRequest\"}},\n", pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))], pyWords[r.IntN(len(pyWords))])
		}
		j.WriteString("  }\n}\n")
		ents = append(ents, File(fmt.Sprintf("botocore/data/service%02d/2015-03-31/service-2.json", i), j.String()))
	}
	ents = append(ents, Link("bin/python-handler", "../boto3/__init__.py"))
	return ents
}

// PythonHandler is a handler module (app.handler) that reports how many
// files of the dependency tree it can see, so a test can tell the whole
// package reached the sandbox.
const PythonHandler = `import os

def handler(event, context):
    files = 0
    for _, _, names in os.walk(os.path.dirname(os.path.abspath(__file__))):
        files += len(names)
    return {"files": files, "echo": event}
`

// PythonFunction returns a deployable zip: app.py (PythonHandler) beside
// the PythonDeps tree at scale, and the number of files in it.
func PythonFunction(scale float64) ([]byte, int, error) {
	ents := append([]Entry{File("app.py", PythonHandler)}, PythonDeps(scale)...)
	files := 0
	for _, e := range ents {
		if e.Mode&ModeDir != ModeDir {
			files++
		}
	}
	z, err := Zip(ents...)
	return z, files, err
}

// Weights returns a stored (uncompressed) entry of n pseudo-random bytes
// from seed: the shape of model weights or other incompressible data that
// makes a package large without costing a compressor anything.
func Weights(name string, n int, seed uint64) Entry {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	_, _ = r.Read(b)
	return Entry{Name: name, Mode: ModeFile | 0o644, Data: string(b), Stored: true}
}
