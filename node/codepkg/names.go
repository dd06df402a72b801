package codepkg

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Path rules shared by Convert (on zip names) and Unpack (on tar names,
// again, as defence in depth).

const (
	// maxNameBytes is Linux's NAME_MAX: a longer component cannot be
	// created anywhere.
	maxNameBytes = 255
	// PATH_MAX (4,096 bytes, the terminating NUL included) bounds every
	// path handed to the kernel, and Unpack hands it "<dir>/<entry path>",
	// where dir is its temporary sibling of the destination. The 4,095
	// usable bytes are split once, the same on every node: MaxUnpackDirBytes
	// for dir, one for the slash, the rest (3,071) for the entry's path. A
	// limit computed from the uploading node's own directory would not do:
	// the package is replicated to nodes whose data directories may be
	// longer, and every one of them must be able to unpack what one
	// accepted. blob.Open refuses a directory past its share at start.
	// 3,071 bytes is far past real trees (node_modules paths run to a few
	// hundred) and, inside the sandbox, /var/task/<path> and /opt/<path>
	// stay well within PATH_MAX.
	MaxUnpackDirBytes = 1023
	maxPathBytes      = 4095 - MaxUnpackDirBytes - 1
	// maxLinkTarget bounds a symlink's target, read from the entry's data.
	maxLinkTarget = 4095
	// maxLinkHops bounds symlink resolution, like the kernel's ELOOP.
	maxLinkHops = 40
)

// cleanName turns an archive entry name into a relative slash-separated
// path with no empty, "." or ".." components, and reports whether the name
// ended in '/'. "." components and repeated slashes are dropped (some
// archivers write "./lib/x.py"); the root itself cleans to "". Names that
// are absolute, contain ".." components, backslashes, NUL or invalid UTF-8,
// or exceed Linux's length limits are refused: reason says why.
func cleanName(name string) (clean string, dirSuffix bool, reason string) {
	switch {
	case name == "":
		return "", false, "has an empty name"
	case !utf8.ValidString(name):
		return "", false, "has a name that is not valid UTF-8"
	case strings.ContainsRune(name, 0):
		return "", false, "has a NUL byte in its name"
	case strings.ContainsRune(name, '\\'):
		return "", false, "contains a backslash; use '/' to separate directories"
	case strings.HasPrefix(name, "/"):
		return "", false, "has an absolute path"
	}
	dirSuffix = strings.HasSuffix(name, "/")
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for part := range strings.SplitSeq(name, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			return "", false, "has a '..' path component"
		}
		if len(part) > maxNameBytes {
			return "", false, "has a path component longer than 255 bytes"
		}
		parts = append(parts, part)
	}
	clean = strings.Join(parts, "/")
	if len(clean) > maxPathBytes {
		return "", false, fmt.Sprintf("has a path of %d bytes; a path in a function's code may have at most %d bytes (Stoke unpacks code under a directory of its own and Linux bounds a whole path to 4096 bytes)", len(clean), maxPathBytes)
	}
	return clean, dirSuffix, ""
}

// checkLinkTarget refuses targets that cannot be resolved inside the tree
// whatever else the tree holds.
func checkLinkTarget(target string) string {
	switch {
	case target == "":
		return "is a symlink with an empty target"
	case len(target) > maxLinkTarget:
		return "is a symlink with a target longer than 4095 bytes"
	case strings.ContainsRune(target, 0):
		return "is a symlink whose target contains a NUL byte"
	case !utf8.ValidString(target):
		return "is a symlink whose target is not valid UTF-8"
	case strings.HasPrefix(target, "/"):
		return "is a symlink with an absolute target"
	}
	return ""
}

// resolvesInside reports whether the symlink at link (a cleaned path) with
// the given target stays inside the root when the kernel resolves it,
// following every other symlink of the tree (links maps cleaned paths to
// targets) as the kernel would. Resolution is physical, not lexical:
// "a/.." where a is a symlink to "." leaves the root even though the text
// "a/.." does not. Components absent from the tree are taken as plain
// directories (the unpacked tree is read-only, nothing can appear later).
// More than maxLinkHops symlinks on the way count as leaving (a loop).
func resolvesInside(link, target string, links map[string]string) bool {
	var stack []string // the resolved directory, as components
	if i := strings.LastIndexByte(link, '/'); i >= 0 {
		stack = strings.Split(link[:i], "/")
	}
	queue := strings.Split(target, "/")
	hops := 0
	for len(queue) > 0 {
		part := queue[0]
		queue = queue[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return false
			}
			stack = stack[:len(stack)-1]
			continue
		}
		candidate := strings.Join(append(stack[:len(stack):len(stack)], part), "/")
		t, isLink := links[candidate]
		if !isLink {
			stack = append(stack, part)
			continue
		}
		hops++
		if hops > maxLinkHops || strings.HasPrefix(t, "/") {
			return false
		}
		// The link's target replaces it, relative to the link's directory,
		// which is the current stack.
		queue = append(strings.Split(t, "/"), queue...)
	}
	return true
}

// CheckUnpackDest reports whether Unpack can extract a tree to dest: the
// temporary directory it extracts into, a sibling of dest named
// ".<base of dest>.unpack-<up to 10 digits>", must fit in
// MaxUnpackDirBytes, or entries with the longest paths Convert accepts
// could not be created. A store calls it once, when it opens, on the
// longest destination it will use.
func CheckUnpackDest(dest string) error {
	dest = filepath.Clean(dest)
	tmp := len(filepath.Dir(dest)) + len("/.") + len(filepath.Base(dest)) + len(tempInfix) + 10
	if tmp > MaxUnpackDirBytes {
		return fmt.Errorf("codepkg: the unpack directory %s is too long: its temporary directories take %d bytes, more than the %d Stoke reserves so that every accepted package can be unpacked (PATH_MAX is 4096); choose a shorter data or unpacked directory", truncate(filepath.Dir(dest), 200), tmp, MaxUnpackDirBytes)
	}
	return nil
}
