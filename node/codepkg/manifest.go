package codepkg

import (
	"fmt"
	"io/fs"
)

// Manifest describes a converted package. It is small enough to store with
// the function's metadata (one entry per file), and everything in it is a
// pure function of the zip's bytes.
type Manifest struct {
	// CodeSha256 is Lambda's CodeSha256: the base64 (standard, padded)
	// SHA-256 of the uploaded zip.
	CodeSha256 string `json:"codeSha256"`
	// ZipSHA256Hex is the same digest in lowercase hex.
	ZipSHA256Hex string `json:"zipSha256Hex"`
	// ZipSize is the zip's size in bytes (Lambda's CodeSize).
	ZipSize int64 `json:"zipSize"`
	// UnpackedSize is the number of bytes extracted: regular files' data
	// plus symlink targets, counted as decompressed.
	UnpackedSize int64 `json:"unpackedSize"`
	// Files lists every directory, regular file and symlink of the tree,
	// sorted by Path, including directories the zip only implied.
	Files []File `json:"files"`
	// TarZstSHA256Hex is the lowercase hex SHA-256 of the tar.zst stream:
	// the blob's content address and what Unpack verifies.
	TarZstSHA256Hex string `json:"tarZstSha256Hex"`
	// TarZstSize is the tar.zst stream's size in bytes.
	TarZstSize int64 `json:"tarZstSize"`
}

// File is one entry of the package's tree.
type File struct {
	// Path is relative, '/'-separated, clean, without a trailing slash.
	Path string   `json:"path"`
	Type FileType `json:"type"`
	// Mode holds the normalized permission bits as written in the tar:
	// 0755 for directories, 0644 or 0755 for files, 0777 for symlinks.
	// Unpack makes the tree read-only (0555 and 0444) on disk.
	Mode fs.FileMode `json:"mode"`
	// Size is the file's length; for a symlink, its target's length.
	Size int64 `json:"size"`
	// LinkTarget is a symlink's target, relative.
	LinkTarget string `json:"linkTarget,omitempty"`
}

// FileType is the kind of a tree entry; packages hold no other kinds.
type FileType uint8

// The kinds of entries a package holds.
const (
	TypeFile FileType = iota + 1
	TypeDir
	TypeSymlink
)

func (t FileType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("FileType(%d)", uint8(t))
}

// MarshalText writes the type by name, so stored manifests read well.
func (t FileType) MarshalText() ([]byte, error) {
	switch t {
	case TypeFile, TypeDir, TypeSymlink:
		return []byte(t.String()), nil
	}
	return nil, fmt.Errorf("codepkg: cannot marshal %v", t)
}

// UnmarshalText reads a type written by MarshalText.
func (t *FileType) UnmarshalText(b []byte) error {
	for _, c := range []FileType{TypeFile, TypeDir, TypeSymlink} {
		if string(b) == c.String() {
			*t = c
			return nil
		}
	}
	return fmt.Errorf("codepkg: unknown file type %q", b)
}
