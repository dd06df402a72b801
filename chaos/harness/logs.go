package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// LogMatch is one match of a pattern in a function's log.
type LogMatch struct {
	// Node is the node whose data dir holds the log (the node that ran
	// the sandbox); Function the function it belongs to.
	Node, Function string
	// Groups are the pattern's submatches, without the whole match.
	Groups []string
}

// FunctionLogMatches returns the first submatch of re in every line of
// every function log stream on every node (LogDir of the runtime, under
// each data dir), in no particular order. Logs of killed nodes count:
// their data dirs stay.
func (c *Cluster) FunctionLogMatches(re *regexp.Regexp) ([]string, error) {
	ms, err := c.FunctionLogSubmatches(re, "")
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if len(m.Groups) > 0 {
			out = append(out, m.Groups[0])
		}
	}
	return out, err
}

// FunctionLogSubmatches returns every match of re in the function log
// streams on every node, of one function or (function "") of all, in no
// particular order. The runtime lays logs out as
// logs/<account>/<function>/<yyyy>/<mm>/<dd>/<stream> under the data dir.
func (c *Cluster) FunctionLogSubmatches(re *regexp.Regexp, function string) ([]LogMatch, error) {
	var out []LogMatch
	for _, n := range c.nodes {
		root := filepath.Join(n.DataDir, "logs")
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			fn := ""
			if len(parts) > 1 {
				fn = parts[1]
			}
			if function != "" && fn != function {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllSubmatch(b, -1) {
				groups := make([]string, 0, len(m)-1)
				for _, g := range m[1:] {
					groups = append(groups, string(g))
				}
				out = append(out, LogMatch{Node: n.ID, Function: fn, Groups: groups})
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("harness: logs of %s: %w", n, err)
		}
	}
	return out, nil
}
