package codepkg

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"go.uber.org/goleak"
)

// Unpack runs a zstd decoder, which may start goroutines; none may outlive
// a call.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
