package codepkg

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tempInfix marks Unpack's temporary directories: ".<dest base>.unpack-<random>"
// beside the destination. A node that crashed mid-unpack leaves them behind;
// its blob store may remove them (with RemoveTree) when no Unpack runs.
const tempInfix = ".unpack-"

// Unpack extracts the package read from r (a tar.zst written by Convert)
// to destDir, which must not exist yet; its parent is created if needed.
// destDir must pass CheckUnpackDest (Unpack refuses it otherwise).
//
// Contract:
//   - The tree appears at destDir complete or not at all: Unpack extracts
//     into a temporary sibling, syncs it and renames it into place.
//   - The SHA-256 of everything read from r must equal expectTarSHA256Hex
//     (lowercase hex); otherwise nothing appears, the temporary directory
//     is removed and the error matches ErrChecksumMismatch. A stream that
//     does not decode, or holds anything Convert would not have written
//     (a path outside the root, a symlink leaving it, a device, a
//     duplicate), matches ErrBadPackage.
//   - The tree is read-only: directories 0555, files 0444 or 0555, owned
//     by the calling user; file mtimes are the package's.
//   - If destDir already exists as a directory (another Unpack finished
//     first), Unpack returns nil without reading r. Of concurrent Unpacks
//     of the same destDir exactly one renames its tree into place; the
//     others discard theirs and return nil.
//   - ctx cancels between entries; the temporary directory is removed.
func Unpack(ctx context.Context, r io.Reader, destDir string, expectTarSHA256Hex string) error {
	_, err := unpack(ctx, r, destDir, expectTarSHA256Hex)
	return err
}

// syncTree makes an extracted tree durable before it is published. It is a
// variable only so that FuzzConvert, which unpacks thousands of trees on a
// shared disk, can skip the flush.
var syncTree = syncFS

// unpack reports whether this call's tree is the one that landed at dest.
func unpack(ctx context.Context, r io.Reader, destDir string, expectHex string) (won bool, err error) {
	expect, err := hex.DecodeString(expectHex)
	if err != nil || len(expect) != sha256.Size {
		return false, fmt.Errorf("codepkg: Unpack: expected checksum %q is not a hex SHA-256", truncate(expectHex, 80))
	}
	dest := filepath.Clean(destDir)
	if err := CheckUnpackDest(dest); err != nil {
		return false, err
	}
	if fi, err := os.Lstat(dest); err == nil {
		if fi.IsDir() {
			return false, nil
		}
		return false, fmt.Errorf("codepkg: Unpack: %s exists and is not a directory", dest)
	}
	parentDir := filepath.Dir(dest)
	if err := os.MkdirAll(parentDir, 0o755); err != nil {
		return false, fmt.Errorf("codepkg: Unpack: %w", err)
	}
	tmp, err := os.MkdirTemp(parentDir, "."+filepath.Base(dest)+tempInfix+"*")
	if err != nil {
		return false, fmt.Errorf("codepkg: Unpack: %w", err)
	}
	defer func() {
		if !won {
			if rerr := RemoveTree(tmp); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()

	h := sha256.New()
	if err := extract(ctx, io.TeeReader(r, h), tmp); err != nil {
		return false, err
	}
	if got := h.Sum(nil); !slices.Equal(got, expect) {
		return false, fmt.Errorf("%w: got %x, want %s", ErrChecksumMismatch, got, expectHex)
	}
	if err := syncTree(tmp); err != nil {
		return false, fmt.Errorf("codepkg: Unpack: syncing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			if fi, serr := os.Lstat(dest); serr == nil && fi.IsDir() {
				return false, nil // another Unpack published first
			}
		}
		return false, fmt.Errorf("codepkg: Unpack: %w", err)
	}
	won = true
	if err := syncDir(parentDir); err != nil {
		return true, fmt.Errorf("codepkg: Unpack: syncing %s: %w", parentDir, err)
	}
	return true, nil
}

// extract writes the package read from r under root, which is empty and
// private to this call, then makes the tree read-only. It reads r to its end
// so that the caller's checksum covers every byte.
func extract(ctx context.Context, r io.Reader, root string) error {
	dec, err := newDecoder(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPackage, err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	types := map[string]FileType{}
	links := map[string]string{}
	var dirs []string
	type stamp struct {
		path  string
		mtime time.Time
	}
	var stamps []stamp
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadPackage, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		clean, _, reason := cleanName(hdr.Name)
		if reason != "" || clean != name || clean == "" {
			return fmt.Errorf("%w: entry %q: not a clean relative path", ErrBadPackage, truncate(hdr.Name, 200))
		}
		if _, dup := types[clean]; dup {
			return fmt.Errorf("%w: entry %q appears twice", ErrBadPackage, truncate(clean, 200))
		}
		// Every parent must be a directory this call created: nothing is
		// ever written through a symlink or into a file's place.
		if p := parent(clean); p != "" && types[p] != TypeDir {
			return fmt.Errorf("%w: entry %q: its parent is not an earlier directory entry", ErrBadPackage, truncate(clean, 200))
		}
		full := filepath.Join(root, filepath.FromSlash(clean))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(full, 0o700); err != nil {
				return fmt.Errorf("codepkg: Unpack: %w", err)
			}
			types[clean] = TypeDir
			dirs = append(dirs, full)
		case tar.TypeReg:
			if err := writeFile(full, tr, hdr, buf); err != nil {
				return err
			}
			types[clean] = TypeFile
			stamps = append(stamps, stamp{full, hdr.ModTime})
		case tar.TypeSymlink:
			if reason := checkLinkTarget(hdr.Linkname); reason != "" {
				return fmt.Errorf("%w: entry %q %s", ErrBadPackage, truncate(clean, 200), reason)
			}
			if err := os.Symlink(hdr.Linkname, full); err != nil {
				return fmt.Errorf("codepkg: Unpack: %w", err)
			}
			types[clean] = TypeSymlink
			links[clean] = hdr.Linkname
		default:
			return fmt.Errorf("%w: entry %q has tar type %q; only directories, files and symlinks are allowed", ErrBadPackage, truncate(clean, 200), hdr.Typeflag)
		}
	}
	for p, t := range links {
		if !resolvesInside(p, t, links) {
			return fmt.Errorf("%w: symlink %q -> %q resolves outside the root", ErrBadPackage, truncate(p, 200), truncate(t, 200))
		}
	}
	// Drain what follows the tar's end inside the zstd stream, then the
	// rest of r, so that the checksum covers the whole input.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPackage, err)
	}
	for _, s := range stamps {
		if err := os.Chtimes(s.path, s.mtime, s.mtime); err != nil {
			return fmt.Errorf("codepkg: Unpack: %w", err)
		}
	}
	// Children before parents, so that each directory is still writable
	// while its entries are stamped.
	for _, d := range slices.Backward(append([]string{root}, dirs...)) {
		if err := os.Chtimes(d, dirModTime, dirModTime); err != nil {
			return fmt.Errorf("codepkg: Unpack: %w", err)
		}
		if err := os.Chmod(d, 0o555); err != nil {
			return fmt.Errorf("codepkg: Unpack: %w", err)
		}
	}
	return nil
}

// writeFile creates full (which must not exist, and is never followed if it
// is a symlink) with the entry's data and its read-only mode. The file is
// created with its final mode (a read-only mode does not stop writing
// through the descriptor that created it); fchmod runs only if the umask
// took bits away.
func writeFile(full string, tr *tar.Reader, hdr *tar.Header, buf []byte) error {
	mode := fs.FileMode(0o444)
	if hdr.Mode&0o111 != 0 {
		mode = 0o555
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("codepkg: Unpack: %w", err)
	}
	src := &trackedReader{r: tr}
	n, err := io.CopyBuffer(writerOnly{f}, src, buf)
	if err != nil && src.err != nil {
		// The package stream failed to decode (corrupt zstd or tar), as
		// opposed to the local disk failing a write.
		err = fmt.Errorf("%w: entry %q: %w", ErrBadPackage, truncate(hdr.Name, 200), src.err)
	}
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%w: entry %q is truncated", ErrBadPackage, truncate(hdr.Name, 200))
	}
	if err == nil && mode&^processUmask() != mode {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, ErrBadPackage) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %w", ErrBadPackage, err)
		}
		return fmt.Errorf("codepkg: Unpack: %w", err)
	}
	return err
}

// writerOnly hides *os.File's ReadFrom, which would copy through its own
// 32 KiB buffer instead of the caller's.
type writerOnly struct{ io.Writer }

// processUmask returns the process's umask, read once from
// /proc/self/status (Linux 4.7+); if it cannot be read, every bit counts as
// masked, so that writeFile always chmods.
var processUmask = sync.OnceValue(func() fs.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return fs.FileMode(m) & 0o777
			}
		}
	}
	return 0o777
})

// RemoveTree removes a tree Unpack created (or left behind), restoring
// write permission on its directories first so that it works for a
// non-root owner too.
func RemoveTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("codepkg: removing %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("codepkg: removing %s: %w", dir, err)
	}
	return nil
}

// trackedReader remembers the error its reader returned, so a copy can tell
// a bad package (read side) from a failing disk (write side).
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
