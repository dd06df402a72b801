// Package blob is each node's store of code packages, content-addressed by
// the SHA-256 of the uploaded zip. A blob holds the original zip (served
// back byte for byte by GetFunction's Code.Location), the package sandboxes
// unpack (a deterministic tar.zst, see node/codepkg) and its manifest.
// Unpacked read-only trees, shared by every sandbox of the same code, are
// created on first use, once, atomically.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/stokehq/stoke/node/codepkg"
)

// File names inside a blob's directory.
const (
	zipFile      = "code.zip"
	packageFile  = "package.tar.zst"
	manifestFile = "manifest.json"
)

var (
	// ErrNotFound: this node does not hold the blob.
	ErrNotFound = errors.New("blob: not found")
	// ErrCorrupt: the blob's bytes no longer match their checksum.
	ErrCorrupt = errors.New("blob: corrupt")
)

var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidID reports whether id is a blob id (lowercase hex SHA-256).
func ValidID(id string) bool { return idRE.MatchString(id) }

// Config configures a Store.
type Config struct {
	// Dir holds blobs/, unpacked/ and tmp/.
	Dir string
	// Limits are the archive rules Put enforces.
	Limits codepkg.Limits
	Logger *slog.Logger
}

// Store is one node's blob store. All methods are safe for concurrent use.
type Store struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	unpacking map[string]*unpackCall // tar sha -> in-progress unpack
	refs      map[string]int         // tar sha -> sandboxes using the tree
}

type unpackCall struct {
	done chan struct{}
	err  error
}

// Open opens (creating) the store in cfg.Dir and removes leftovers of
// interrupted writes.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" || cfg.Logger == nil {
		return nil, errors.New("blob: Dir and Logger are required")
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{"blobs", "unpacked", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "tmp")); err != nil {
		return nil, fmt.Errorf("blob: clean tmp: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	// Unpacked trees must be readable by sandbox users; nothing secret
	// lives in them beyond the code itself.
	if err := os.Chmod(filepath.Join(cfg.Dir, "unpacked"), 0o711); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, log: cfg.Logger.With("component", "blob"),
		unpacking: map[string]*unpackCall{}, refs: map[string]int{}}, nil
}

func (s *Store) blobDir(id string) string {
	return filepath.Join(s.cfg.Dir, "blobs", id[:2], id)
}

// Path returns the path of a file of a blob (for streaming to peers).
func (s *Store) path(id, name string) string { return filepath.Join(s.blobDir(id), name) }

// Has reports whether the blob is present (complete) on this node.
func (s *Store) Has(id string) bool {
	if !ValidID(id) {
		return false
	}
	_, err := os.Stat(s.path(id, manifestFile))
	return err == nil
}

// Put validates zip, converts it and stores the blob durably (fsynced)
// before returning. Putting a blob that exists returns its manifest. Refusals
// of the archive are *codepkg.Error values.
func (s *Store) Put(ctx context.Context, zip []byte) (*codepkg.Manifest, error) {
	sum := sha256.Sum256(zip)
	id := hex.EncodeToString(sum[:])
	if s.Has(id) {
		return s.Manifest(id)
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.cfg.Dir, "tmp"), "put-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	pkg, err := os.OpenFile(filepath.Join(tmp, packageFile), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	m, err := codepkg.ConvertBytes(zip, s.cfg.Limits, pkg)
	if cerr := closeSynced(pkg); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := writeSynced(filepath.Join(tmp, zipFile), zip); err != nil {
		return nil, err
	}
	return m, s.commit(tmp, id, m)
}

// commit writes the manifest last and renames the complete directory into
// place: a blob is visible only once all its files are durable.
func (s *Store) commit(tmp, id string, m *codepkg.Manifest) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, manifestFile), js); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	final := s.blobDir(id)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		if s.Has(id) {
			return nil // a concurrent Put of the same zip won
		}
		return fmt.Errorf("blob: publish %s: %w", id, err)
	}
	return syncDir(filepath.Dir(final))
}

// Manifest returns a stored blob's manifest.
func (s *Store) Manifest(id string) (*codepkg.Manifest, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	js, err := os.ReadFile(s.path(id, manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var m codepkg.Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, id, err)
	}
	return &m, nil
}

// OpenZip streams the original zip. The reader verifies the bytes against
// the blob id as they are read and fails at EOF if they do not match.
func (s *Store) OpenZip(id string) (io.ReadCloser, int64, error) {
	if !s.Has(id) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.openVerified(id, zipFile, id)
}

// OpenPackage streams the tar.zst package, verified like OpenZip.
func (s *Store) OpenPackage(id string) (io.ReadCloser, int64, error) {
	m, err := s.Manifest(id)
	if err != nil {
		return nil, 0, err
	}
	return s.openVerified(id, packageFile, m.TarZstSHA256Hex)
}

func (s *Store) openVerified(id, name, wantHex string) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path(id, name))
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &verifyingReader{f: f, h: sha256.New(), want: wantHex, what: id + "/" + name}, fi.Size(), nil
}

type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	want string
	what string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return n, fmt.Errorf("%w: %s", ErrCorrupt, v.what)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// Delete removes a blob (and leaves its unpacked tree to the tree GC).
func (s *Store) Delete(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return os.RemoveAll(s.blobDir(id))
}

// List returns the ids of every blob on this node.
func (s *Store) List() ([]string, error) {
	prefixes, err := os.ReadDir(filepath.Join(s.cfg.Dir, "blobs"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range prefixes {
		ids, err := os.ReadDir(filepath.Join(s.cfg.Dir, "blobs", p.Name()))
		if err != nil {
			continue
		}
		for _, e := range ids {
			if s.Has(e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// Acquire returns the unpacked, read-only tree of a blob, unpacking it on
// first use; concurrent callers for the same code share one unpack.
// release must be called when the tree is no longer in use. Acquire
// implements runtime.CodeSource.
func (s *Store) Acquire(ctx context.Context, id string) (string, func(), error) {
	m, err := s.Manifest(id)
	if err != nil {
		return "", nil, err
	}
	tree := m.TarZstSHA256Hex
	dir := filepath.Join(s.cfg.Dir, "unpacked", tree)
	for {
		s.mu.Lock()
		if _, err := os.Stat(dir); err == nil {
			s.refs[tree]++
			s.mu.Unlock()
			return dir, s.releaser(tree), nil
		}
		call, busy := s.unpacking[tree]
		if !busy {
			call = &unpackCall{done: make(chan struct{})}
			s.unpacking[tree] = call
			s.mu.Unlock()
			call.err = s.unpack(ctx, id, dir, tree)
			s.mu.Lock()
			delete(s.unpacking, tree)
			close(call.done)
			s.mu.Unlock()
			if call.err != nil {
				return "", nil, call.err
			}
			continue
		}
		s.mu.Unlock()
		select {
		case <-call.done:
			if call.err != nil {
				return "", nil, call.err
			}
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
}

func (s *Store) unpack(ctx context.Context, id, dir, tree string) error {
	rc, _, err := s.OpenPackage(id)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := codepkg.Unpack(ctx, rc, dir, tree); err != nil {
		if errors.Is(err, codepkg.ErrChecksumMismatch) || errors.Is(err, codepkg.ErrBadPackage) {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, id, err)
		}
		return err
	}
	s.log.Debug("unpacked code", "blob", id, "tree", tree)
	return nil
}

func (s *Store) releaser(tree string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.refs[tree]--; s.refs[tree] <= 0 {
				delete(s.refs, tree)
			}
			s.mu.Unlock()
		})
	}
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return closeSynced(f)
}

func closeSynced(f *os.File) error {
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
