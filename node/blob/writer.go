package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
)

// Part names the files of a blob as they travel between nodes.
type Part int

// The parts of a blob, in the order a Writer takes them.
const (
	PartPackage Part = iota + 1
	PartZip
)

func (p Part) String() string {
	switch p {
	case PartPackage:
		return "package"
	case PartZip:
		return "zip"
	}
	return fmt.Sprintf("Part(%d)", int(p))
}

// Writer stores a blob received from a peer. The package's bytes come
// first, then the zip's when the Writer was opened with one. Commit checks
// every size and digest against the id and the manifest, fsyncs, and only
// then makes the blob visible; any mismatch leaves the store unchanged.
// A Writer is used by one goroutine.
type Writer struct {
	s        *Store
	id       string
	manifest []byte
	sizes    map[Part]int64
	digests  map[Part]string
	tmp      string

	part Part // the part being written; 0 before the first
	f    *os.File
	h    hash.Hash
	n    int64
	done map[Part]bool
}

// NewWriter starts receiving blob id described by manifest (JSON, checked
// with ParseManifest). withZip says whether the zip follows the package:
// with it the blob is a complete replica, without it a cached copy.
func (s *Store) NewWriter(id string, manifest []byte, withZip bool) (*Writer, error) {
	m, err := ParseManifest(id, manifest)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.cfg.Dir, "tmp"), "recv-")
	if err != nil {
		return nil, err
	}
	w := &Writer{s: s, id: id, manifest: manifest, tmp: tmp, done: map[Part]bool{},
		sizes:   map[Part]int64{PartPackage: m.TarZstSize},
		digests: map[Part]string{PartPackage: m.TarZstSHA256Hex}}
	if withZip {
		w.sizes[PartZip], w.digests[PartZip] = m.ZipSize, id
	}
	return w, nil
}

// Write appends p to part. Parts must come in order (package, then zip)
// and must not exceed their manifest sizes.
func (w *Writer) Write(part Part, p []byte) error {
	if part != w.part {
		if err := w.finishPart(); err != nil {
			return err
		}
		if _, ok := w.sizes[part]; !ok || w.done[part] || (part == PartZip && !w.done[PartPackage]) {
			return fmt.Errorf("%w: %s of %s out of order", ErrInvalid, part, w.id)
		}
		name := packageFile
		if part == PartZip {
			name = zipFile
		}
		f, err := os.OpenFile(filepath.Join(w.tmp, name), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		w.part, w.f, w.h, w.n = part, f, sha256.New(), 0
	}
	if w.n+int64(len(p)) > w.sizes[part] {
		return fmt.Errorf("%w: %s of %s longer than its %d bytes", ErrCorrupt, part, w.id, w.sizes[part])
	}
	if _, err := w.f.Write(p); err != nil {
		return err
	}
	w.h.Write(p)
	w.n += int64(len(p))
	return nil
}

// finishPart closes the current part and checks its size and digest.
func (w *Writer) finishPart() error {
	if w.f == nil {
		return nil
	}
	err := closeSynced(w.f)
	w.f = nil
	if err != nil {
		return err
	}
	if w.n != w.sizes[w.part] {
		return fmt.Errorf("%w: %s of %s has %d bytes, want %d", ErrCorrupt, w.part, w.id, w.n, w.sizes[w.part])
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.digests[w.part] {
		return fmt.Errorf("%w: %s of %s has digest %s, want %s", ErrCorrupt, w.part, w.id, got, w.digests[w.part])
	}
	w.done[w.part] = true
	return nil
}

// Commit checks the last part, then publishes the blob. created is false
// when the store already held what was received. The Writer is finished
// either way.
func (w *Writer) Commit() (created bool, err error) {
	defer w.Abort()
	if err := w.finishPart(); err != nil {
		return false, err
	}
	for part := range w.sizes {
		if !w.done[part] {
			return false, fmt.Errorf("%w: %s of %s never arrived", ErrCorrupt, part, w.id)
		}
	}
	return w.s.commit(w.tmp, w.id, w.manifest)
}

// Abort discards everything received. It is safe after Commit.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if err := os.RemoveAll(w.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.s.log.Warn("removing a received blob's temporary files", "err", err)
	}
}
