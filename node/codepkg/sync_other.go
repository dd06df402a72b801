//go:build !linux

package codepkg

import "os"

// syncFS falls back to syncing the directory itself where syncfs(2) does not
// exist. Stoke nodes run on Linux; this keeps the package building elsewhere.
func syncFS(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
