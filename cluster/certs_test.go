package cluster_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stokehq/stoke/cluster"
)

// TestWritePEM: the file gets its mode and content, an existing file is
// never overwritten, and no temporary file is left beside it.
func TestWritePEM(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	key := filepath.Join(dir, "n1-key.pem")
	if err := cluster.WritePEM(key, []byte("first"), true); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WritePEM(key, []byte("second"), true); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("writing over an existing key: %v, want ErrExist", err)
	}
	cert := filepath.Join(dir, "n1.pem")
	if err := cluster.WritePEM(cert, []byte("cert"), false); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]struct {
		data string
		mode fs.FileMode
	}{key: {"first", 0o600}, cert: {"cert", 0o644}} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want.data || st.Mode().Perm() != want.mode {
			t.Errorf("%s: %q %v, want %q %v", path, b, st.Mode().Perm(), want.data, want.mode)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%d files in the directory, want the key and the certificate only", len(entries))
	}
}
