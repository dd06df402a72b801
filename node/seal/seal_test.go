package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenBindsContextAndKey(t *testing.T) {
	a, _ := NewSecret()
	b, _ := NewSecret()
	sa, sb := NewSealer(a), NewSealer(b)
	sealed, err := sa.Seal([]byte("secret"), "env:fn")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, err := sa.Open(sealed, "env:fn"); err != nil || string(got) != "secret" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := sa.Open(sealed, "env:other"); !errors.Is(err, ErrOpen) {
		t.Fatalf("open with another context: %v", err)
	}
	if _, err := sb.Open(sealed, "env:fn"); !errors.Is(err, ErrOpen) {
		t.Fatalf("open with another key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := sa.Open(sealed, "env:fn"); !errors.Is(err, ErrOpen) {
		t.Fatalf("open of tampered data: %v", err)
	}
	if _, err := sa.Open(nil, "env:fn"); !errors.Is(err, ErrOpen) {
		t.Fatalf("open of empty data: %v", err)
	}
}

func TestLoadOrCreateKeepsOwnerOnlyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "cluster.key")
	s1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	s2, created, err := LoadOrCreate(path)
	if err != nil || created || s1 != s2 {
		t.Fatalf("reload: %v created=%v same=%v", err, created, s1 == s2)
	}
	if _, err := ParseSecret("short"); err == nil {
		t.Fatal("parsed a malformed key")
	}
	if bytes.Equal(s1.Derive("a"), s1.Derive("b")) {
		t.Fatal("different purposes derived the same key")
	}
}

// TestWriteReplacesStaleTemporaryFile: a world-readable temporary file left
// by an earlier attempt does not pass its permissions on to the key.
func TestWriteReplacesStaleTemporaryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(path+".tmp", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := NewSecret()
	if err := Write(path, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	got, created, err := LoadOrCreate(path)
	if err != nil || created || got != s {
		t.Fatalf("reload: %v created=%v same=%v", err, created, got == s)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}
