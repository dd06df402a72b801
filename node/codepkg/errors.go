package codepkg

import (
	"errors"
	"fmt"
)

// Kind classifies why Convert refused a zip. Every kind is the client's
// fault: the API answers InvalidParameterValueException with Error.Message.
type Kind int

// The reasons Convert refuses a zip.
const (
	KindZipTooLarge      Kind = iota + 1 // the zip exceeds MaxZipBytes
	KindUnzippedTooLarge                 // the extracted bytes exceed MaxUnzippedBytes
	KindTooManyFiles                     // more entries than MaxFiles
	KindCorrupt                          // not a readable zip (format, CRC, compression method)
	KindEncrypted                        // an entry is encrypted
	KindUnsafePath                       // "..", absolute path, backslash, NUL, overlong name
	KindUnsafeSymlink                    // a symlink target is absolute or leaves the root
	KindSpecialFile                      // device, FIFO, socket or other non-regular file
	KindSpecialMode                      // setuid, setgid or sticky bit
	KindDuplicate                        // two entries with the same cleaned name
	KindClash                            // a name is both a file (or symlink) and a directory
	KindZipBomb                          // compression ratio beyond MaxCompressionRatio, or overlapping entries
	KindSizeMismatch                     // an entry's real size differs from its header
)

// Sentinel errors, one per Kind, matched by errors.Is on every *Error.
var (
	ErrZipTooLarge      = errors.New("codepkg: zip too large")
	ErrUnzippedTooLarge = errors.New("codepkg: unzipped size too large")
	ErrTooManyFiles     = errors.New("codepkg: too many files")
	ErrCorrupt          = errors.New("codepkg: corrupt zip")
	ErrEncrypted        = errors.New("codepkg: encrypted entry")
	ErrUnsafePath       = errors.New("codepkg: unsafe path")
	ErrUnsafeSymlink    = errors.New("codepkg: unsafe symlink")
	ErrSpecialFile      = errors.New("codepkg: special file")
	ErrSpecialMode      = errors.New("codepkg: setuid, setgid or sticky bit")
	ErrDuplicate        = errors.New("codepkg: duplicate entry")
	ErrClash            = errors.New("codepkg: file and directory clash")
	ErrZipBomb          = errors.New("codepkg: zip bomb")
	ErrSizeMismatch     = errors.New("codepkg: size header mismatch")
)

// Errors of Unpack. Both checksum and format failures mean the package
// bytes are bad: the caller should discard its copy and fetch another.
var (
	ErrChecksumMismatch = errors.New("codepkg: package checksum mismatch")
	ErrBadPackage       = errors.New("codepkg: malformed package")
)

// msgUnzip is Lambda's message for an archive it cannot read.
const msgUnzip = "Could not unzip uploaded file. Please check your file, then try to upload again."

var kindNames = map[Kind]struct {
	name     string
	sentinel error
}{
	KindZipTooLarge:      {"zip_too_large", ErrZipTooLarge},
	KindUnzippedTooLarge: {"unzipped_too_large", ErrUnzippedTooLarge},
	KindTooManyFiles:     {"too_many_files", ErrTooManyFiles},
	KindCorrupt:          {"corrupt", ErrCorrupt},
	KindEncrypted:        {"encrypted", ErrEncrypted},
	KindUnsafePath:       {"unsafe_path", ErrUnsafePath},
	KindUnsafeSymlink:    {"unsafe_symlink", ErrUnsafeSymlink},
	KindSpecialFile:      {"special_file", ErrSpecialFile},
	KindSpecialMode:      {"special_mode", ErrSpecialMode},
	KindDuplicate:        {"duplicate", ErrDuplicate},
	KindClash:            {"clash", ErrClash},
	KindZipBomb:          {"zip_bomb", ErrZipBomb},
	KindSizeMismatch:     {"size_mismatch", ErrSizeMismatch},
}

// String names the kind for logs and metric labels.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n.name
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Sentinel returns the kind's sentinel error (nil for an unknown kind).
func (k Kind) Sentinel() error { return kindNames[k].sentinel }

// Error is every refusal Convert returns. Message is meant for the client:
// Lambda's own text where Lambda has one, otherwise a sentence naming the
// entry and the rule it breaks.
type Error struct {
	Kind    Kind
	Message string
	// Entry is the offending entry's name as written in the zip, if one.
	Entry string
	// Cause is the underlying error, for logs.
	Cause error
}

func (e *Error) Error() string {
	s := "codepkg: " + e.Kind.String() + ": " + e.Message
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap exposes the kind's sentinel and the cause.
func (e *Error) Unwrap() []error {
	errs := []error{e.Kind.Sentinel()}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// entryError builds a refusal about one entry, quoting its name safely.
func entryError(k Kind, entry string, format string, args ...any) *Error {
	return &Error{Kind: k, Entry: entry, Message: fmt.Sprintf("Could not unzip uploaded file: entry %q ", truncate(entry, 200)) + fmt.Sprintf(format, args...)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
