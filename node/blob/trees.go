package blob

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stokehq/stoke/node/codepkg"
)

// treeInfo is the bookkeeping of one published unpacked tree, named by its
// package's digest (two blobs with the same package share a tree).
type treeInfo struct {
	size     int64 // bytes, as the manifest counts them
	refs     int   // sandboxes using the tree (Acquire without release)
	lastUsed time.Time
}

type unpackCall struct {
	done chan struct{}
	err  error
}

func (s *Store) treeDir(tree string) string { return filepath.Join(s.cfg.UnpackedDir, tree) }

// loadTrees registers the trees already unpacked and removes what an
// interrupted unpack or eviction left behind (".<tree>.unpack-*",
// ".evict-*").
func (s *Store) loadTrees() error {
	root := s.cfg.UnpackedDir
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), ".") || !ValidID(e.Name()) || !e.IsDir() {
			if err := codepkg.RemoveTree(p); err != nil {
				return err
			}
			s.log.Info("removed a leftover of an interrupted unpack", "path", p)
			continue
		}
		s.trees[e.Name()] = &treeInfo{size: treeSize(p), lastUsed: now}
	}
	return nil
}

// treeSize counts what a manifest's UnpackedSize counts: regular files'
// bytes and symlink targets.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Acquire returns the unpacked, read-only tree of a blob, unpacking it on
// first use; concurrent callers for the same code share one unpack.
// release must be called when the tree is no longer in use; until then the
// tree is never evicted. A package whose bytes do not match its digest is
// never unpacked: Acquire returns ErrCorrupt and publishes nothing.
// Acquire implements runtime.CodeSource.
func (s *Store) Acquire(ctx context.Context, id string) (string, func(), error) {
	m, err := s.Manifest(id)
	if err != nil {
		return "", nil, err
	}
	tree := m.TarZstSHA256Hex
	dir := s.treeDir(tree)
	for {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		s.mu.Lock()
		if t, ok := s.trees[tree]; ok {
			t.refs++
			t.lastUsed = time.Now()
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
			if call.err == nil {
				s.trees[tree] = &treeInfo{size: m.UnpackedSize, refs: 1, lastUsed: time.Now()}
			}
			close(call.done)
			s.mu.Unlock()
			if call.err != nil {
				return "", nil, call.err
			}
			if s.cfg.UnpackedBudget > 0 {
				if _, err := s.EvictTrees(s.cfg.UnpackedBudget); err != nil {
					s.log.Warn("evicting unpacked trees", "err", err)
				}
			}
			return dir, s.releaser(tree), nil
		}
		s.mu.Unlock()
		select {
		case <-call.done:
			// The unpacker's own deadline may have ended its attempt;
			// then this caller tries with its own.
			if call.err != nil && !errors.Is(call.err, context.Canceled) && !errors.Is(call.err, context.DeadlineExceeded) {
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
		if errors.Is(err, codepkg.ErrChecksumMismatch) || errors.Is(err, codepkg.ErrBadPackage) || errors.Is(err, ErrCorrupt) {
			return errors.Join(ErrCorrupt, err)
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
			if t, ok := s.trees[tree]; ok {
				t.refs--
				t.lastUsed = time.Now()
			}
			s.mu.Unlock()
		})
	}
}

// EvictTrees removes unpacked trees that no sandbox uses: first every tree
// whose package no local blob has any more, then the least recently used
// until the trees fit in budget bytes (budget 0: only the orphans). Trees
// in use are never removed, so the total may stay above the budget. It
// returns how many trees it removed.
func (s *Store) EvictTrees(budget int64) (int, error) {
	wanted := map[string]bool{}
	ids, err := s.List()
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if m, err := s.Manifest(id); err == nil {
			wanted[m.TarZstSHA256Hex] = true
		}
	}

	s.mu.Lock()
	type cand struct {
		tree string
		info *treeInfo
	}
	var idle []cand
	var total int64
	for tree, t := range s.trees {
		total += t.size
		if t.refs <= 0 {
			idle = append(idle, cand{tree, t})
		}
	}
	// Orphans first, then least recently used.
	slices.SortFunc(idle, func(a, b cand) int {
		if wa, wb := wanted[a.tree], wanted[b.tree]; wa != wb {
			if wb {
				return -1
			}
			return 1
		}
		return a.info.lastUsed.Compare(b.info.lastUsed)
	})
	var victims []string
	for _, c := range idle {
		if wanted[c.tree] && (budget <= 0 || total <= budget) {
			break
		}
		gone := filepath.Join(s.cfg.UnpackedDir, ".evict-"+c.tree+"-"+randomSuffix())
		if err := os.Rename(s.treeDir(c.tree), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.mu.Unlock()
			return len(victims), err
		}
		delete(s.trees, c.tree)
		total -= c.info.size
		victims = append(victims, gone)
	}
	s.mu.Unlock()

	var errs []error
	for _, v := range victims {
		errs = append(errs, codepkg.RemoveTree(v))
	}
	if len(victims) > 0 {
		s.log.Debug("evicted unpacked trees", "count", len(victims), "bytes_left", total)
	}
	return len(victims), errors.Join(errs...)
}
