package codepkg

import (
	"errors"
	"fmt"
)

// Limits bound what Convert accepts. Sizes are counted from the bytes
// actually decompressed, never taken from the zip's headers; a header may
// only make Convert refuse earlier.
type Limits struct {
	// MaxZipBytes bounds the zip itself. Lambda: 50 MB (52,428,800 bytes).
	MaxZipBytes int64
	// MaxUnzippedBytes bounds the sum of all regular files and symlink
	// targets. Lambda: 250 MB (262,144,000 bytes).
	MaxUnzippedBytes int64
	// MaxFiles bounds the number of entries (files, directories and
	// symlinks, as listed in the zip).
	MaxFiles int
	// MaxCompressionRatio bounds decompressed/compressed bytes of one entry
	// once it has produced more than RatioFloorBytes: an entry that
	// inflates beyond it is refused as a zip bomb.
	MaxCompressionRatio int64
	// RatioFloorBytes exempts small entries from the ratio check (a
	// kilobyte of zeros legitimately compresses a hundredfold).
	RatioFloorBytes int64
}

// DefaultLimits returns Lambda's limits, 100,000 entries, and a zip-bomb
// ratio of 200:1 for entries larger than 1 MiB. Real Python and Node
// dependency trees compress 3-10:1 overall; text files rarely exceed 30:1.
func DefaultLimits() Limits {
	return Limits{
		MaxZipBytes:         52_428_800,
		MaxUnzippedBytes:    262_144_000,
		MaxFiles:            100_000,
		MaxCompressionRatio: 200,
		RatioFloorBytes:     1 << 20,
	}
}

// Validate reports every limit that cannot work.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxZipBytes <= 0 {
		errs = append(errs, fmt.Errorf("codepkg: MaxZipBytes %d must be positive", l.MaxZipBytes))
	}
	if l.MaxUnzippedBytes <= 0 {
		errs = append(errs, fmt.Errorf("codepkg: MaxUnzippedBytes %d must be positive", l.MaxUnzippedBytes))
	}
	if l.MaxFiles <= 0 {
		errs = append(errs, fmt.Errorf("codepkg: MaxFiles %d must be positive", l.MaxFiles))
	}
	if l.MaxCompressionRatio < 2 {
		errs = append(errs, fmt.Errorf("codepkg: MaxCompressionRatio %d must be at least 2", l.MaxCompressionRatio))
	}
	if l.RatioFloorBytes < 0 {
		errs = append(errs, fmt.Errorf("codepkg: RatioFloorBytes %d must not be negative", l.RatioFloorBytes))
	}
	return errors.Join(errs...)
}
