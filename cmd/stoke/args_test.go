package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseInterleaved: flags parse wherever they stand among the
// positional arguments, a bool flag never swallows the argument after it
// (whatever its name), and "--" ends the flags.
func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		follow bool
		since  string
		pos    []string
	}{
		{args: []string{"fn"}, since: "1h", pos: []string{"fn"}},
		{args: []string{"fn", "--follow"}, follow: true, since: "1h", pos: []string{"fn"}},
		{args: []string{"--follow", "fn", "--since", "10m"}, follow: true, since: "10m", pos: []string{"fn"}},
		{args: []string{"-since=5m", "fn", "-follow", "x"}, follow: true, since: "5m", pos: []string{"fn", "x"}},
		{args: []string{"fn", "-", "--follow"}, follow: true, since: "1h", pos: []string{"fn", "-"}},
		{args: []string{"fn", "--follow", "--", "-5", "--since"}, follow: true, since: "1h", pos: []string{"fn", "-5", "--since"}},
	} {
		fs := flag.NewFlagSet("logs", flag.ContinueOnError)
		follow := fs.Bool("follow", false, "")
		since := fs.String("since", "1h", "")
		if err := parseInterleaved(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if *follow != tc.follow || *since != tc.since || !reflect.DeepEqual(fs.Args(), tc.pos) {
			t.Errorf("%q: follow %v since %q args %q, want %v %q %q", tc.args, *follow, *since, fs.Args(), tc.follow, tc.since, tc.pos)
		}
	}
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := parseInterleaved(fs, []string{"fn", "--nope"}); err == nil {
		t.Error("an unknown flag after a positional argument parsed")
	}
}

// TestZipDir: paths relative to the folder, sorted, contents and the
// executable bit kept, a symlink stored as a link to its target.
func TestZipDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lib", "a.txt"), bytes.Repeat([]byte("a"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("lib/a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	b, err := zipDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	got := map[string]string{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[f.Name] = string(data)
		if f.Name == "bootstrap" && f.Mode().Perm()&0o111 == 0 {
			t.Errorf("bootstrap lost its executable bit: %v", f.Mode())
		}
		if f.Name == "link" && f.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("link stored as %v, want a symlink", f.Mode())
		}
	}
	if want := []string{"bootstrap", "lib/", "lib/a.txt", "link"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	if got["bootstrap"] != "#!/bin/sh\n" || len(got["lib/a.txt"]) != 100_000 || got["link"] != "lib/a.txt" {
		t.Fatalf("contents: bootstrap %q, lib/a.txt %d bytes, link %q", got["bootstrap"], len(got["lib/a.txt"]), got["link"])
	}
}

// TestInt32FlagRefusesWhatWouldWrap: 2^32+128 MB is an error, not 128 MB.
func TestInt32FlagRefusesWhatWouldWrap(t *testing.T) {
	var v int32Flag
	if err := v.Set("4294967424"); err == nil {
		t.Fatalf("4294967424 parsed as %d", v)
	}
	if err := v.Set("-3"); err != nil || v != -3 {
		t.Fatalf("-3: %d, %v", v, err)
	}
}

// TestProgressReader: the bar ends with one newline at the end of the
// body, and a body longer than it declared does not panic.
func TestProgressReader(t *testing.T) {
	for _, tc := range []struct{ size, declared int64 }{{5 << 20, 5 << 20}, {6 << 20, 5 << 20}} {
		var out bytes.Buffer
		r := &progressReader{rc: io.NopCloser(bytes.NewReader(make([]byte, tc.size))), total: tc.declared, out: &out}
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != tc.size {
			t.Fatalf("read %d of %d bytes: %v", n, tc.size, err)
		}
		if got := strings.Count(out.String(), "\n"); got != 1 || !strings.Contains(out.String(), "100%") {
			t.Errorf("size %d declared %d: %d newlines, output ends %q", tc.size, tc.declared, got, out.String()[max(0, out.Len()-60):])
		}
	}
}

// TestOneLine: whitespace folds to single spaces, and a long message is
// cut between characters, never inside one.
func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\n  b\tc", 80, "a b c"},
		{"abcdefghij", 8, "abcde..."},
		{"abcdé fin", 8, "abcd..."}, // é is 2 bytes at offsets 4-5: cutting at 5 would split it
	} {
		got := oneLine(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("oneLine(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
