package main

import (
	"flag"
	"io"
	"reflect"
	"testing"
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
