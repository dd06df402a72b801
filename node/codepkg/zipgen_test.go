package codepkg

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"
)

// Archive generators for the tests, the fuzz seed corpus and the benchmark.
// Everything they produce is deterministic.

// zipTime is the modification time of generated entries.
var zipTime = time.Date(2025, 6, 1, 12, 30, 44, 0, time.UTC)

// Unix file type bits as zip stores them in the upper half of ExternalAttrs.
const (
	sIFREG  = 0o100000
	sIFDIR  = 0o040000
	sIFLNK  = 0o120000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
	sIFSOCK = 0o140000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000
)

// zent is one entry to write. unixMode 0 means "no Unix attributes" (an
// archive made on Windows).
type zent struct {
	name     string
	unixMode uint32
	data     string
	flags    uint16
	stored   bool
	mtime    time.Time
}

func file(name, data string) zent { return zent{name: name, unixMode: sIFREG | 0o644, data: data} }
func exe(name, data string) zent  { return zent{name: name, unixMode: sIFREG | 0o755, data: data} }
func dir(name string) zent        { return zent{name: name, unixMode: sIFDIR | 0o755} }
func link(name, target string) zent {
	return zent{name: name, unixMode: sIFLNK | 0o777, data: target}
}

// buildZip writes entries in order with archive/zip.
func buildZip(t testing.TB, entries ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Flags: e.flags}
		if e.stored {
			h.Method = zip.Store
		}
		h.Modified = zipTime
		if !e.mtime.IsZero() {
			h.Modified = e.mtime
		}
		if e.unixMode != 0 {
			h.CreatorVersion = 3<<8 | 20 // made on Unix
			h.ExternalAttrs = e.unixMode << 16
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deflate compresses data at the best level.
func deflate(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	return buf.Bytes()
}

// lyingZip holds one entry whose headers declare declaredSize bytes while
// its deflate data inflates to realSize zeros (CRC of the declared prefix,
// so only the size can give it away).
func lyingZip(t testing.TB, declaredSize, realSize int) []byte {
	t.Helper()
	real := make([]byte, realSize)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "small.txt", Method: zip.Deflate, Modified: zipTime,
		CRC32: crc32.ChecksumIEEE(real[:min(declaredSize, realSize)])}
	comp := deflate(t, real)
	h.CompressedSize64, h.UncompressedSize64 = uint64(len(comp)), uint64(declaredSize)
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp)
	zw.Close()
	return buf.Bytes()
}

// rawMethodZip holds one entry claiming compression method m.
func rawMethodZip(t testing.TB, m uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "a.py", Method: m, Modified: zipTime, CompressedSize64: 4, UncompressedSize64: 4, CRC32: crc32.ChecksumIEEE([]byte("abcd"))}
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abcd"))
	zw.Close()
	return buf.Bytes()
}

// overlappingZip is an overlapping-entry bomb: one local file header and
// deflate stream of size bytes of zeros, and n central directory records
// with different names that all point at it.
func overlappingZip(t testing.TB, n, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	comp := deflate(t, data)
	crc := crc32.ChecksumIEEE(data)
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	le(uint32(0x04034b50))
	le([]uint16{20, 0, 8, 0, 0x21})
	le([]uint32{crc, uint32(len(comp)), uint32(size)})
	le([]uint16{1, 0})
	b.WriteString("a")
	b.Write(comp)
	cdStart := b.Len()
	for i := range n {
		name := []byte{'f', byte('a' + i%26), byte('a' + i/26)}
		le(uint32(0x02014b50))
		le([]uint16{3<<8 | 20, 20, 0, 8, 0, 0x21})
		le([]uint32{crc, uint32(len(comp)), uint32(size)})
		le([]uint16{uint16(len(name)), 0, 0, 0, 0})
		le([]uint32{uint32(sIFREG|0o644) << 16, 0})
		b.Write(name)
	}
	cdLen := b.Len() - cdStart
	le(uint32(0x06054b50))
	le([]uint16{0, 0, uint16(n), uint16(n)})
	le([]uint32{uint32(cdLen), uint32(cdStart)})
	le(uint16(0))
	return b.Bytes()
}

// flipCRC corrupts the first stored byte of a single-entry stored zip, so
// that its CRC no longer matches.
func crcMismatchZip(t testing.TB) []byte {
	t.Helper()
	z := buildZip(t, zent{name: "a.py", unixMode: sIFREG | 0o644, data: "print('hello')\n", stored: true})
	i := bytes.Index(z, []byte("print"))
	z[i] ^= 0x20
	return z
}

// refusedArchive is one archive Convert must refuse, with the reason.
type refusedArchive struct {
	name   string
	zip    func(testing.TB) []byte
	limits func(*Limits)
	kind   Kind
	msg    string // substring of Error.Message
}

func refusedArchives() []refusedArchive {
	z := func(entries ...zent) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return buildZip(t, entries...) }
	}
	long := string(bytes.Repeat([]byte("x"), 256))
	return []refusedArchive{
		{"traversal", z(file("../evil.py", "x")), nil, KindUnsafePath, "has a '..' path component"},
		{"nested traversal", z(file("lib/../../evil.py", "x")), nil, KindUnsafePath, "'..'"},
		{"absolute path", z(file("/etc/cron.d/evil", "x")), nil, KindUnsafePath, "absolute path"},
		{"backslash traversal", z(file(`..\evil.py`, "x")), nil, KindUnsafePath, "backslash"},
		{"backslash separator", z(file(`lib\mod.py`, "x")), nil, KindUnsafePath, "backslash"},
		{"NUL in name", z(file("a.py\x00.txt", "x")), nil, KindUnsafePath, "NUL"},
		{"component too long", z(file("lib/"+long, "x")), nil, KindUnsafePath, "255 bytes"},
		// Issue 13: a 4,001-byte path was accepted, then could never be
		// unpacked under a node's data directory.
		{"path past PATH_MAX once unpacked", z(file(longPath(4001), "x")), nil, KindUnsafePath, "has a path of 4001 bytes; a path in a function's code may have at most 3071 bytes"},
		{"path one byte past the limit", z(file(longPath(maxPathBytes+1), "x")), nil, KindUnsafePath, "at most 3071 bytes"},
		{"symlink absolute", z(link("passwd", "/etc/passwd")), nil, KindUnsafeSymlink, "absolute target"},
		{"symlink escapes", z(dir("lib/"), link("lib/up", "../../etc")), nil, KindUnsafeSymlink, "resolves outside"},
		{"symlink escapes through a symlink", z(link("here", "."), link("sneaky", "here/../etc/passwd")), nil, KindUnsafeSymlink, "resolves outside"},
		{"symlink chain escapes", z(dir("a/"), link("a/b", ".."), link("c", "a/b/..")), nil, KindUnsafeSymlink, "resolves outside"},
		{"symlink loop", z(link("a", "b"), link("b", "a")), nil, KindUnsafeSymlink, "loops"},
		{"symlink empty target", z(link("a", "")), nil, KindUnsafeSymlink, "empty target"},
		{"file through a symlink", z(link("lib", "."), file("lib/x.py", "x")), nil, KindClash, "which is a symlink"},
		{"character device", z(zent{name: "null", unixMode: sIFCHR | 0o666}), nil, KindSpecialFile, "device, FIFO or socket"},
		{"fifo", z(zent{name: "pipe", unixMode: sIFIFO | 0o644}), nil, KindSpecialFile, "FIFO"},
		{"socket", z(zent{name: "sock", unixMode: sIFSOCK | 0o644}), nil, KindSpecialFile, "socket"},
		{"setuid", z(zent{name: "bin/su", unixMode: sIFREG | sISUID | 0o755, data: "x"}), nil, KindSpecialMode, "setuid"},
		{"setgid", z(zent{name: "bin/sg", unixMode: sIFREG | sISGID | 0o755, data: "x"}), nil, KindSpecialMode, "setgid"},
		{"sticky directory", z(zent{name: "tmp/", unixMode: sIFDIR | sISVTX | 0o777}), nil, KindSpecialMode, "sticky"},
		{"duplicate", z(file("a.py", "1"), file("a.py", "2")), nil, KindDuplicate, "same path"},
		{"duplicate after cleaning", z(file("lib/a.py", "1"), file("./lib//a.py", "2")), nil, KindDuplicate, "same path"},
		{"file then directory", z(file("lib", "x"), file("lib/a.py", "y")), nil, KindClash, "which is a file"},
		{"file and directory entry", z(file("lib", "x"), dir("lib/")), nil, KindClash, "with the same path"},
		{"encrypted", z(zent{name: "secret.py", unixMode: sIFREG | 0o644, data: "x", flags: 0x1}), nil, KindEncrypted, "encrypted"},
		{"ratio bomb", func(t testing.TB) []byte {
			return buildZip(t, zent{name: "zeros.bin", unixMode: sIFREG | 0o644, data: string(make([]byte, 16<<20))})
		}, nil, KindZipBomb, "expands more than 200 times"},
		{"overlapping bomb", func(t testing.TB) []byte { return overlappingZip(t, 50, 1<<20) }, nil, KindZipBomb, "overlapping"},
		{"lying size header", func(t testing.TB) []byte { return lyingZip(t, 1000, 8<<20) }, nil, KindSizeMismatch, "more data than its header declares (1000 bytes)"},
		{"short size header", func(t testing.TB) []byte { return lyingZip(t, 1<<20, 1000) }, nil, KindSizeMismatch, "holds fewer bytes than its header declares (1048576)"},
		{"declared too large", func(t testing.TB) []byte { return lyingZip(t, 300<<20, 1000) }, nil, KindUnzippedTooLarge, "Unzipped size must be smaller than 262144000 bytes"},
		{"unzipped too large", z(file("a.txt", string(bytes.Repeat([]byte("0123456789abcdef"), 64<<10))), file("b.txt", "x")), func(l *Limits) { l.MaxUnzippedBytes = 1 << 20 }, KindUnzippedTooLarge, "Unzipped size must be smaller than 1048576 bytes"},
		{"zip too large", z(file("a.txt", "hello")), func(l *Limits) { l.MaxZipBytes = 64 }, KindZipTooLarge, "Zipped size must be smaller than 64 bytes"},
		{"too many files", z(file("a", "1"), file("b", "2"), file("c", "3")), func(l *Limits) { l.MaxFiles = 2 }, KindTooManyFiles, "more than the limit of 2"},
		{"not a zip", func(testing.TB) []byte { return []byte("this is not a zip file at all, just text") }, nil, KindCorrupt, msgUnzip},
		{"CRC mismatch", crcMismatchZip, nil, KindCorrupt, msgUnzip},
		{"unsupported method", func(t testing.TB) []byte { return rawMethodZip(t, 12) }, nil, KindCorrupt, msgUnzip},
	}
}
