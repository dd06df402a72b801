package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	"strings"
	"sync"
	"time"

	"github.com/stokehq/stoke/node/codepkg"
)

// File names inside a blob's directory.
const (
	zipFile      = "code.zip"
	packageFile  = "package.tar.zst"
	manifestFile = "manifest.json"
)

var (
	// ErrNotFound: this node does not hold the blob (or the part asked for).
	ErrNotFound = errors.New("blob: not found")
	// ErrCorrupt: the blob's bytes no longer match their checksum, or bytes
	// received for it do not match.
	ErrCorrupt = errors.New("blob: corrupt")
	// ErrInvalid: a manifest or stream that cannot describe the blob it
	// claims to (wrong id, inconsistent sizes, parts out of order).
	ErrInvalid = errors.New("blob: invalid")
)

var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidID reports whether id is a blob id (lowercase hex SHA-256).
func ValidID(id string) bool { return idRE.MatchString(id) }

// IDOf returns the blob id of a zip.
func IDOf(zip []byte) string {
	sum := sha256.Sum256(zip)
	return hex.EncodeToString(sum[:])
}

// Config configures a Store.
type Config struct {
	// Dir holds blobs/, tmp/ and (unless UnpackedDir is set) unpacked/.
	Dir string
	// UnpackedDir holds the unpacked trees; empty means Dir/unpacked. It
	// may be on another file system: a tmpfs makes first cold starts of
	// large packages several times faster (creating thousands of files is
	// what unpacking costs on a disk), at the price of memory within
	// UnpackedBudget and of unpacking again after a reboot.
	UnpackedDir string
	// Limits are the archive rules Put enforces.
	Limits codepkg.Limits
	// UnpackedBudget bounds the disk the unpacked trees may use, in bytes
	// (as their manifests count it). Past it, trees no sandbox uses are
	// removed least recently used first. 0: no bound.
	UnpackedBudget int64
	Logger         *slog.Logger
}

// Store is one node's blob store. All methods are safe for concurrent use.
//
// A blob directory holds manifest.json and package.tar.zst, and code.zip
// unless the blob is only a cached copy (fetched to run the code, not a
// replica). The manifest is written last and the directory renamed into
// place, so a blob is visible only once its files are durable.
type Store struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	unpacking map[string]*unpackCall // tree (package sha) -> in-progress unpack
	trees     map[string]*treeInfo   // published unpacked trees
}

// Open opens (creating) the store in cfg.Dir and removes what interrupted
// writes left: the tmp/ directory, and unpack and eviction leftovers in
// unpacked/.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" || cfg.Logger == nil {
		return nil, errors.New("blob: Dir and Logger are required")
	}
	if cfg.UnpackedBudget < 0 {
		return nil, fmt.Errorf("blob: UnpackedBudget %d must not be negative", cfg.UnpackedBudget)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if cfg.UnpackedDir == "" {
		cfg.UnpackedDir = filepath.Join(cfg.Dir, "unpacked")
	}
	// A tree is unpacked at UnpackedDir/<package sha256, 64 hex digits>.
	if err := codepkg.CheckUnpackDest(filepath.Join(cfg.UnpackedDir, strings.Repeat("0", 64))); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	for _, d := range []string{filepath.Join(cfg.Dir, "blobs"), cfg.UnpackedDir, filepath.Join(cfg.Dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
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
	if err := os.Chmod(cfg.UnpackedDir, 0o711); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "blob"),
		unpacking: map[string]*unpackCall{}, trees: map[string]*treeInfo{}}
	if err := s.loadTrees(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) blobDir(id string) string {
	return filepath.Join(s.cfg.Dir, "blobs", id[:2], id)
}

func (s *Store) path(id, name string) string { return filepath.Join(s.blobDir(id), name) }

// Has reports whether the blob is present: its manifest and package, so
// this node can run the code.
func (s *Store) Has(id string) bool {
	if !ValidID(id) {
		return false
	}
	_, err := os.Stat(s.path(id, manifestFile))
	return err == nil
}

// HasZip reports whether the blob is complete here (the original zip
// too): what a replica holds.
func (s *Store) HasZip(id string) bool {
	if !s.Has(id) {
		return false
	}
	_, err := os.Stat(s.path(id, zipFile))
	return err == nil
}

// Put validates zip, converts it and stores the complete blob durably
// (fsynced) before returning. Putting a blob that exists returns its
// manifest (adding the zip to a cached copy). Refusals of the archive are
// *codepkg.Error values.
func (s *Store) Put(ctx context.Context, zip []byte) (*codepkg.Manifest, error) {
	id := IDOf(zip)
	if s.HasZip(id) {
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
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if _, err := s.commit(tmp, id, js); err != nil {
		return nil, err
	}
	return m, nil
}

// commit publishes a complete temporary blob directory: it writes the
// manifest last, then renames the directory into place. If a copy without
// the zip is already there and tmp has one, the zip is moved into it.
// created is false when the blob was already complete.
func (s *Store) commit(tmp, id string, manifest []byte) (created bool, err error) {
	if err := writeSynced(filepath.Join(tmp, manifestFile), manifest); err != nil {
		return false, err
	}
	if err := syncDir(tmp); err != nil {
		return false, err
	}
	final := s.blobDir(id)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return false, err
	}
	if s.Has(id) {
		return s.addZip(tmp, id)
	}
	if err := os.Rename(tmp, final); err != nil {
		if s.Has(id) {
			return s.addZip(tmp, id) // a concurrent writer won
		}
		return false, fmt.Errorf("blob: publish %s: %w", id, err)
	}
	return true, syncDir(filepath.Dir(final))
}

// addZip completes a cached copy with the zip in tmp, if tmp has one.
func (s *Store) addZip(tmp, id string) (bool, error) {
	if s.HasZip(id) {
		return false, nil
	}
	src := filepath.Join(tmp, zipFile)
	if _, err := os.Stat(src); err != nil {
		return false, nil // neither copy has the zip
	}
	if err := os.Rename(src, s.path(id, zipFile)); err != nil {
		return false, fmt.Errorf("blob: add zip to %s: %w", id, err)
	}
	return true, syncDir(s.blobDir(id))
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
	m, err := ParseManifest(id, js)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, id, err)
	}
	return m, nil
}

// ManifestJSON returns a stored blob's manifest as stored (for peers).
func (s *Store) ManifestJSON(id string) ([]byte, error) {
	if _, err := s.Manifest(id); err != nil {
		return nil, err
	}
	return os.ReadFile(s.path(id, manifestFile))
}

// ParseManifest decodes a manifest and checks that it can describe blob
// id: its zip digest is the id, in hex and in Lambda's base64, and its
// sizes and package digest are well formed.
func ParseManifest(id string, js []byte) (*codepkg.Manifest, error) {
	var m codepkg.Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	raw, _ := hex.DecodeString(id)
	switch {
	case !ValidID(id) || m.ZipSHA256Hex != id:
		return nil, fmt.Errorf("%w: manifest is for zip %q, not %q", ErrInvalid, m.ZipSHA256Hex, id)
	case m.CodeSha256 != base64.StdEncoding.EncodeToString(raw):
		return nil, fmt.Errorf("%w: manifest CodeSha256 %q does not match %s", ErrInvalid, m.CodeSha256, id)
	case !ValidID(m.TarZstSHA256Hex):
		return nil, fmt.Errorf("%w: manifest package digest %q", ErrInvalid, m.TarZstSHA256Hex)
	case m.ZipSize <= 0 || m.TarZstSize <= 0 || m.UnpackedSize < 0:
		return nil, fmt.Errorf("%w: manifest sizes zip %d, package %d, unpacked %d", ErrInvalid, m.ZipSize, m.TarZstSize, m.UnpackedSize)
	}
	return &m, nil
}

// OpenZip streams the original zip. The reader verifies the bytes against
// the blob id as they are read and fails at EOF, with ErrCorrupt, if they
// do not match: a caller that must not pass on corrupt bytes holds back
// the data of the read that returned the error (or calls VerifyZip first).
func (s *Store) OpenZip(id string) (io.ReadCloser, int64, error) {
	if !s.HasZip(id) {
		return nil, 0, fmt.Errorf("%w: zip of %s", ErrNotFound, id)
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
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, id, name)
	}
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

// Delete removes a blob. Its unpacked tree stays until the tree eviction
// finds no blob left for it and no sandbox using it.
func (s *Store) Delete(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	// Rename first so that Has turns false at once and a reader never
	// sees a half-removed directory.
	gone := filepath.Join(s.cfg.Dir, "tmp", "delete-"+id+"-"+randomSuffix())
	if err := os.Rename(s.blobDir(id), gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return os.RemoveAll(gone)
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

// StoredAt is when the blob was stored on this node (its manifest's
// modification time).
func (s *Store) StoredAt(id string) (time.Time, error) {
	if !ValidID(id) {
		return time.Time{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	fi, err := os.Stat(s.path(id, manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// Verify re-reads every file of a blob and checks it against its digest:
// the package against the manifest, the zip (when present) against the
// id. It returns ErrCorrupt for a mismatch or an unreadable manifest.
func (s *Store) Verify(id string) error {
	if _, err := s.Manifest(id); err != nil {
		return err
	}
	if err := s.verifyPart(s.OpenPackage(id)); err != nil {
		return err
	}
	if !s.HasZip(id) {
		return nil
	}
	return s.VerifyZip(id)
}

// VerifyZip checks the zip alone (before serving it for download).
func (s *Store) VerifyZip(id string) error { return s.verifyPart(s.OpenZip(id)) }

func (s *Store) verifyPart(rc io.ReadCloser, _ int64, err error) error {
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// Usage is the disk a store uses, as its manifests count it.
type Usage struct {
	Blobs        int
	BlobBytes    int64 // zips and packages
	Trees        int
	TreeBytes    int64 // unpacked trees
	TreesInUse   int
	CachedCopies int // blobs held without their zip
}

// Usage sums the store's blobs and trees.
func (s *Store) Usage() Usage {
	var u Usage
	ids, _ := s.List()
	for _, id := range ids {
		m, err := s.Manifest(id)
		if err != nil {
			continue
		}
		u.Blobs++
		u.BlobBytes += m.TarZstSize
		if s.HasZip(id) {
			u.BlobBytes += m.ZipSize
		} else {
			u.CachedCopies++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.trees {
		u.Trees++
		u.TreeBytes += t.size
		if t.refs > 0 {
			u.TreesInUse++
		}
	}
	return u
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

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CreateTemp creates a temporary file inside the store's tmp/ directory
// (on the store's file system, emptied at Open).
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.cfg.Dir, "tmp"), pattern)
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.cfg.Dir }
