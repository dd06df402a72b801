package codepkg

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// longPath returns a relative path of exactly n bytes whose components are
// all within NAME_MAX.
func longPath(n int) string {
	var b strings.Builder
	for n-b.Len() > maxNameBytes {
		b.WriteString(strings.Repeat("d", 200) + "/")
	}
	b.WriteString(strings.Repeat("f", n-b.Len()))
	return b.String()
}

// longestDest returns a destination under a test directory whose
// temporary sibling takes exactly MaxUnpackDirBytes, the longest
// CheckUnpackDest accepts.
func longestDest(t *testing.T) string {
	t.Helper()
	base := strings.Repeat("0", 64)
	// len(parent) + "/." + base + ".unpack-" + 10 digits
	parentLen := MaxUnpackDirBytes - 2 - len(base) - len(tempInfix) - 10
	root := t.TempDir()
	pad := parentLen - len(root) - 1
	if pad < 1 {
		t.Fatalf("temp dir %s is too long for this test", root)
	}
	parent := filepath.Join(root, longPath(pad))
	if len(parent) != parentLen {
		t.Fatalf("parent is %d bytes, want %d", len(parent), parentLen)
	}
	return filepath.Join(parent, base)
}

// TestLongestPathUnpacksUnderLongestDest checks that the split of PATH_MAX
// adds up: the longest entry path Convert accepts unpacks under the
// longest destination CheckUnpackDest accepts, and one byte more on either
// side is refused.
func TestLongestPathUnpacksUnderLongestDest(t *testing.T) {
	dest := longestDest(t)
	if err := CheckUnpackDest(dest); err != nil {
		t.Fatalf("CheckUnpackDest(longest) = %v", err)
	}
	if err := CheckUnpackDest(dest + "0"); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("CheckUnpackDest(one byte longer) = %v, want a refusal", err)
	}
	name := longPath(maxPathBytes)
	pkg, m := convertTree(t, file(name, "hello"))
	if err := Unpack(context.Background(), bytes.NewReader(pkg), dest, m.TarZstSHA256Hex); err != nil {
		t.Fatalf("Unpack of a %d-byte path under a %d-byte destination: %v", len(name), len(dest), err)
	}
	t.Cleanup(func() { _ = RemoveTree(dest) })
	got, err := os.ReadFile(filepath.Join(dest, name))
	if err != nil || string(got) != "hello" {
		t.Fatalf("unpacked file = %q, %v", got, err)
	}
	if err := Unpack(context.Background(), bytes.NewReader(pkg), dest+"0", m.TarZstSHA256Hex); err == nil {
		t.Fatal("Unpack to a destination past MaxUnpackDirBytes succeeded")
	}
}
