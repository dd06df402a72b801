package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTLSCreateWritesBothFilesOrNeither: a CA whose key file name is
// taken leaves no certificate behind, so the run can be repeated once the
// name is free; a validity of no days is refused before anything is
// written.
func TestTLSCreateWritesBothFilesOrNeither(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "stoke-ca-key.pem")
	if err := os.WriteFile(keyFile, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runTLS([]string{"ca", "create", "-dir", dir}); err == nil {
		t.Fatal("created a CA over an existing key file")
	}
	if _, err := os.Stat(filepath.Join(dir, "stoke-ca.pem")); !os.IsNotExist(err) {
		t.Fatalf("the certificate was left behind: %v", err)
	}
	os.Remove(keyFile)
	if err := runTLS([]string{"ca", "create", "-dir", dir, "-days", "0"}); err == nil {
		t.Fatal("created a CA valid for 0 days")
	}
	if err := runTLS([]string{"ca", "create", "-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if err := runTLS([]string{"cert", "create", "-dir", dir, "-node", "n1", "-ip", "127.0.0.1", "-days", "-1",
		"-ca", filepath.Join(dir, "stoke-ca.pem"), "-ca-key", keyFile}); err == nil {
		t.Fatal("created a certificate valid for -1 days")
	}
	if err := runTLS([]string{"cert", "create", "-dir", dir, "-node", "n1", "-ip", "127.0.0.1",
		"-ca", filepath.Join(dir, "stoke-ca.pem"), "-ca-key", keyFile}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"stoke-ca.pem", "stoke-ca-key.pem", "n1.pem", "n1-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
