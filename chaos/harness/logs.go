package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// FunctionLogMatches returns the first submatch of re in every line of
// every function log stream on every node (LogDir of the runtime, under
// each data dir), in no particular order. Logs of killed nodes count:
// their data dirs stay.
func (c *Cluster) FunctionLogMatches(re *regexp.Regexp) ([]string, error) {
	var out []string
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
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllSubmatch(b, -1) {
				if len(m) > 1 {
					out = append(out, string(m[1]))
				}
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("harness: logs of %s: %w", n, err)
		}
	}
	return out, nil
}
