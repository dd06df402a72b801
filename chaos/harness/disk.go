package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// fillFile is the file FillDisk writes into a node's data dir.
const fillFile = "chaos-fill"

// mountDataDisk mounts a tmpfs of sizeMB over dir (root only).
func (c *Cluster) mountDataDisk(dir string, sizeMB int) error {
	if !IsRoot() {
		return fmt.Errorf("%w: a data disk needs root to mount", ErrUnsupported)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV,
		fmt.Sprintf("size=%dm,mode=0700", sizeMB)); err != nil {
		return fmt.Errorf("harness: mount tmpfs on %s: %w", dir, err)
	}
	c.mounts = append(c.mounts, dir)
	return nil
}

func (c *Cluster) unmountAll() error {
	var errs []error
	for i := len(c.mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(c.mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("harness: unmount %s: %w", c.mounts[i], err))
		}
	}
	c.mounts = nil
	return errors.Join(errs...)
}

// FillDisk writes into n's data dir until its disk is full. The cluster
// must have been started with DataDiskMB, so the disk is n's own tmpfs.
func (c *Cluster) FillDisk(n *Node) error {
	if c.cfg.DataDiskMB == 0 {
		return fmt.Errorf("%w: start the cluster with DataDiskMB to fill a node's disk", ErrUnsupported)
	}
	f, err := os.OpenFile(filepath.Join(n.DataDir, fillFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Fill the last partial block too.
				for n := len(buf) / 2; n > 0; n /= 2 {
					for {
						if _, err := f.Write(buf[:n]); err != nil {
							break
						}
					}
				}
				return nil
			}
			return err
		}
	}
}

// FreeDisk removes what FillDisk wrote.
func (c *Cluster) FreeDisk(n *Node) error {
	err := os.Remove(filepath.Join(n.DataDir, fillFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// DiskFree reports the bytes available on n's data disk.
func (c *Cluster) DiskFree(n *Node) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.DataDir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
