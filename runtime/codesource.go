package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CodeSource hands the pool unpacked code trees. The node implements it over
// its blob store (unpacking a content-addressed package once and sharing the
// tree between sandboxes); tests and local runs use DirSource.
type CodeSource interface {
	// Acquire returns the root of the unpacked tree for codeID. The tree
	// must stay in place and unchanged until release is called; the pool
	// calls release once the last sandbox using it is gone. Files must be
	// readable by others (mode o+r, directories o+x): sandboxes run as an
	// unprivileged uid. Acquire may be called concurrently.
	Acquire(ctx context.Context, codeID string) (dir string, release func(), err error)
}

// DirSource serves code trees straight from directories: a code ID is either
// a key of Dirs, or, when Dirs has no such key and Root is set, a path
// relative to Root. It never copies or unpacks anything.
type DirSource struct {
	Dirs map[string]string
	Root string
}

// Acquire implements CodeSource.
func (d DirSource) Acquire(_ context.Context, codeID string) (string, func(), error) {
	dir, ok := d.Dirs[codeID]
	if !ok {
		if d.Root == "" || codeID == "" || strings.Contains(codeID, "..") {
			return "", nil, fmt.Errorf("%w: unknown code id %q", ErrCode, codeID)
		}
		dir = filepath.Join(d.Root, codeID)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrCode, err)
	}
	if !st.IsDir() {
		return "", nil, fmt.Errorf("%w: %s is not a directory", ErrCode, dir)
	}
	return dir, func() {}, nil
}
