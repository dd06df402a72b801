package codepkg

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// entry is one accepted zip entry (or an implied directory, f == nil).
type entry struct {
	File
	f     *zip.File
	mtime time.Time
}

// ConvertBytes is Convert over a zip held in memory.
func ConvertBytes(zipBytes []byte, limits Limits, out io.Writer) (*Manifest, error) {
	return Convert(bytes.NewReader(zipBytes), int64(len(zipBytes)), limits, out)
}

// Convert validates the zip of the given size read from r and writes it to
// out as a package (a deterministic tar.zst, see tarzst.go). A zip that
// breaks a rule returns an *Error (its Message is fit for the client) and
// whatever was written to out must be discarded; any other error is a
// failure to write out or invalid limits. Convert writes nothing to disk,
// holds at most one entry's 32 KiB buffer and the zip's central directory in
// memory, and does not retain r or out.
func Convert(r io.ReaderAt, size int64, limits Limits, out io.Writer) (*Manifest, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if size > limits.MaxZipBytes {
		return nil, &Error{Kind: KindZipTooLarge, Message: fmt.Sprintf("Zipped size must be smaller than %d bytes", limits.MaxZipBytes)}
	}
	if size <= 0 {
		return nil, &Error{Kind: KindCorrupt, Message: msgUnzip}
	}
	m := &Manifest{ZipSize: size}
	zh := sha256.New()
	if _, err := io.Copy(zh, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, fmt.Errorf("codepkg: reading zip: %w", err)
	}
	sum := zh.Sum(nil)
	m.CodeSha256 = base64.StdEncoding.EncodeToString(sum)
	m.ZipSHA256Hex = hex.EncodeToString(sum)

	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// ErrInsecurePath (GODEBUG zipinsecurepath=0) comes with a usable
		// reader; the names are judged below either way.
		return nil, &Error{Kind: KindCorrupt, Message: msgUnzip, Cause: err}
	}
	if len(zr.File) > limits.MaxFiles {
		return nil, &Error{Kind: KindTooManyFiles, Message: fmt.Sprintf("Could not unzip uploaded file: it has %d entries, more than the limit of %d", len(zr.File), limits.MaxFiles)}
	}
	entries, err := collect(zr, size, limits)
	if err != nil {
		return nil, err
	}
	c := &converter{limits: limits, buf: make([]byte, 32<<10)}
	if err := c.readLinks(entries); err != nil {
		return nil, err
	}
	if err := c.write(entries, out, m); err != nil {
		return nil, err
	}
	m.UnpackedSize = c.total
	return m, nil
}

// collect judges every entry's name, type and mode, the tree they form and
// the layout of their data, without decompressing anything. It returns the
// entries sorted by path, with implied directories added.
func collect(zr *zip.Reader, size int64, limits Limits) ([]*entry, error) {
	byPath := make(map[string]*entry, len(zr.File))
	var declared uint64
	for _, f := range zr.File {
		e, err := judge(f)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue // the root directory itself
		}
		if prev, dup := byPath[e.Path]; dup {
			if prev.Type != e.Type {
				return nil, entryError(KindClash, f.Name, "is a %s but entry %q with the same path is a %s", e.Type, truncate(prev.f.Name, 200), prev.Type)
			}
			return nil, entryError(KindDuplicate, f.Name, "has the same path as entry %q", truncate(prev.f.Name, 200))
		}
		byPath[e.Path] = e
		if e.Type != TypeDir {
			declared += f.UncompressedSize64
		}
	}
	// Headers only ever make Convert refuse earlier: a zip that declares
	// more than the limit either is too big or lies, and is refused for
	// either. What is accepted is counted from real bytes in write.
	if declared > uint64(limits.MaxUnzippedBytes) {
		return nil, unzippedTooLarge(limits)
	}
	entries := make([]*entry, 0, len(byPath))
	for _, e := range byPath {
		entries = append(entries, e)
	}
	for _, e := range entries {
		for p := parent(e.Path); p != ""; p = parent(p) {
			a, ok := byPath[p]
			if !ok {
				a = &entry{File: File{Path: p, Type: TypeDir, Mode: 0o755}, mtime: dirModTime}
				byPath[p] = a
				entries = append(entries, a)
				continue
			}
			if a.Type != TypeDir {
				return nil, entryError(KindClash, e.f.Name, "is inside %q, which is a %s, not a directory", truncate(a.f.Name, 200), a.Type)
			}
		}
	}
	if err := checkOverlap(entries, size); err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b *entry) int { return strings.Compare(a.Path, b.Path) })
	return entries, nil
}

// judge applies the per-entry rules. It returns nil, nil for an entry that
// names the root directory.
func judge(f *zip.File) (*entry, error) {
	if f.Flags&0x1 != 0 {
		return nil, entryError(KindEncrypted, f.Name, "is encrypted; upload an unencrypted zip")
	}
	clean, dirSuffix, reason := cleanName(f.Name)
	if reason != "" {
		return nil, entryError(KindUnsafePath, f.Name, "%s", reason)
	}
	mode := f.Mode()
	switch {
	case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
		return nil, entryError(KindSpecialFile, f.Name, "is a device, FIFO or socket; only files, directories and symlinks are allowed")
	case mode&(fs.ModeSetuid|fs.ModeSticky) != 0, mode&fs.ModeSetgid != 0 && !(mode.IsDir() || dirSuffix):
		// A setgid directory is tolerated (and normalized away): Linux
		// gives that bit to every directory created inside a setgid one,
		// so zips built in such trees carry it, and in a read-only tree it
		// does nothing.
		return nil, entryError(KindSpecialMode, f.Name, "has the setuid, setgid or sticky bit set")
	case mode&fs.ModeSymlink != 0 && dirSuffix:
		return nil, entryError(KindUnsafeSymlink, f.Name, "is a symlink whose name ends in '/'")
	}
	e := &entry{f: f, mtime: fileModTime(f.Modified)}
	e.Path = clean
	switch {
	case mode&fs.ModeSymlink != 0:
		e.Type, e.Mode = TypeSymlink, 0o777
	case mode.IsDir() || dirSuffix:
		e.Type, e.Mode, e.mtime = TypeDir, 0o755, dirModTime
	default:
		e.Type, e.Mode = TypeFile, 0o644
		if mode&0o111 != 0 {
			e.Mode = 0o755
		}
	}
	if clean == "" {
		if e.Type == TypeDir {
			return nil, nil
		}
		return nil, entryError(KindUnsafePath, f.Name, "names the root directory but is not a directory")
	}
	if e.Type != TypeDir && f.Method != zip.Store && f.Method != zip.Deflate {
		return nil, &Error{Kind: KindCorrupt, Entry: f.Name, Message: msgUnzip,
			Cause: fmt.Errorf("entry %q uses compression method %d; only stored and deflated entries are supported", truncate(f.Name, 200), f.Method)}
	}
	return e, nil
}

// checkOverlap refuses entries whose compressed data overlap another's (the
// trick of "overlapping" zip bombs, which reuse one deflate stream for many
// entries) or run past the end of the zip.
func checkOverlap(entries []*entry, size int64) error {
	type span struct {
		start, end int64
		name       string
	}
	var spans []span
	for _, e := range entries {
		if e.f == nil || e.Type == TypeDir || e.f.CompressedSize64 == 0 {
			continue
		}
		off, err := e.f.DataOffset()
		if err != nil {
			return &Error{Kind: KindCorrupt, Entry: e.f.Name, Message: msgUnzip, Cause: err}
		}
		if e.f.CompressedSize64 > uint64(size) || off > size-int64(e.f.CompressedSize64) {
			return &Error{Kind: KindCorrupt, Entry: e.f.Name, Message: msgUnzip, Cause: fmt.Errorf("entry %q: data runs past the end of the zip", truncate(e.f.Name, 200))}
		}
		spans = append(spans, span{off, off + int64(e.f.CompressedSize64), e.f.Name})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return entryError(KindZipBomb, spans[i].name, "shares its compressed data with entry %q (an overlapping-entry zip bomb)", truncate(spans[i-1].name, 200))
		}
	}
	return nil
}

// converter carries the running byte count across entries.
type converter struct {
	limits Limits
	buf    []byte
	total  int64 // bytes actually decompressed so far
}

func unzippedTooLarge(l Limits) *Error {
	return &Error{Kind: KindUnzippedTooLarge, Message: fmt.Sprintf("Unzipped size must be smaller than %d bytes", l.MaxUnzippedBytes)}
}

// readLinks reads every symlink's target and checks that each resolves
// inside the tree, following the others.
func (c *converter) readLinks(entries []*entry) error {
	links := map[string]string{}
	for _, e := range entries {
		if e.Type != TypeSymlink {
			continue
		}
		var target bytes.Buffer
		if err := c.copyEntry(&target, e, maxLinkTarget+1); err != nil {
			return err
		}
		if reason := checkLinkTarget(target.String()); reason != "" {
			return entryError(KindUnsafeSymlink, e.f.Name, "%s", reason)
		}
		e.LinkTarget, e.Size = target.String(), int64(target.Len())
		links[e.Path] = e.LinkTarget
	}
	for _, e := range entries {
		if e.Type == TypeSymlink && !resolvesInside(e.Path, e.LinkTarget, links) {
			return entryError(KindUnsafeSymlink, e.f.Name, "is a symlink to %q, which resolves outside the function's root (or loops)", truncate(e.LinkTarget, 200))
		}
	}
	return nil
}

// copyEntry decompresses e into w, counting real bytes against the entry's
// header, the total limit, the compression ratio and limit (the most this
// entry may hold). It stops reading as soon as a limit is crossed.
func (c *converter) copyEntry(w io.Writer, e *entry, limit int64) error {
	f := e.f
	rc, err := f.Open()
	if err != nil {
		return &Error{Kind: KindCorrupt, Entry: f.Name, Message: msgUnzip, Cause: err}
	}
	defer rc.Close()
	compressed := max(int64(f.CompressedSize64), 1)
	var n int64
	for {
		k, rerr := rc.Read(c.buf)
		if k > 0 {
			n += int64(k)
			c.total += int64(k)
			switch {
			case uint64(n) > f.UncompressedSize64:
				return entryError(KindSizeMismatch, f.Name, "holds more data than its header declares (%d bytes)", f.UncompressedSize64)
			case c.total > c.limits.MaxUnzippedBytes:
				return unzippedTooLarge(c.limits)
			case n > c.limits.RatioFloorBytes && n/compressed > c.limits.MaxCompressionRatio:
				return entryError(KindZipBomb, f.Name, "expands more than %d times (%d compressed bytes); refusing a possible zip bomb", c.limits.MaxCompressionRatio, f.CompressedSize64)
			case n > limit:
				return entryError(KindUnsafeSymlink, f.Name, "is a symlink with a target longer than %d bytes", limit-1)
			}
			if _, err := w.Write(c.buf[:k]); err != nil {
				return fmt.Errorf("codepkg: writing package: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		// archive/zip itself stops an entry at its declared size: past it
		// Read returns ErrFormat (and no bytes); short of it at the end of
		// the data, ErrUnexpectedEOF.
		if errors.Is(rerr, zip.ErrFormat) {
			return entryError(KindSizeMismatch, f.Name, "holds more data than its header declares (%d bytes)", f.UncompressedSize64)
		}
		if errors.Is(rerr, io.ErrUnexpectedEOF) && uint64(n) < f.UncompressedSize64 {
			return entryError(KindSizeMismatch, f.Name, "holds fewer bytes than its header declares (%d)", f.UncompressedSize64)
		}
		if rerr != nil {
			return &Error{Kind: KindCorrupt, Entry: f.Name, Message: msgUnzip, Cause: fmt.Errorf("entry %q: %w", truncate(f.Name, 200), rerr)}
		}
	}
	if uint64(n) != f.UncompressedSize64 {
		return entryError(KindSizeMismatch, f.Name, "holds %d bytes but its header declares %d", n, f.UncompressedSize64)
	}
	return nil
}

// write streams the sorted tree into out as tar.zst and fills in m.
func (c *converter) write(entries []*entry, out io.Writer, m *Manifest) error {
	hw := newHashingWriter(out)
	zw, err := newEncoder(hw)
	if err != nil {
		return fmt.Errorf("codepkg: zstd encoder: %w", err)
	}
	defer zw.Close()
	tw := tar.NewWriter(zw)
	m.Files = make([]File, 0, len(entries))
	for _, e := range entries {
		if e.Type == TypeFile {
			e.Size = int64(e.f.UncompressedSize64)
		}
		if err := tw.WriteHeader(tarHeader(e.File, e.mtime)); err != nil {
			return fmt.Errorf("codepkg: writing package: %w", err)
		}
		if e.Type == TypeFile {
			if err := c.copyEntry(tw, e, e.Size); err != nil {
				return err
			}
		}
		m.Files = append(m.Files, e.File)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("codepkg: writing package: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("codepkg: writing package: %w", err)
	}
	m.TarZstSHA256Hex = hex.EncodeToString(hw.h.Sum(nil))
	m.TarZstSize = hw.n
	return nil
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
