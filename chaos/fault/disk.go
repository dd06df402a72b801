package fault

import (
	"context"
	"errors"

	"github.com/stokehq/stoke/chaos/harness"
)

// DiskFull fills its targets' data disks; Heal frees them. The cluster
// must run with harness.Config.DataDiskMB so each data dir is its own
// tmpfs (root only).
type DiskFull struct {
	Target Target
	victims
}

func (d *DiskFull) Name() string { return "disk-full(" + d.Target.Name + ")" }

func (d *DiskFull) Inject(ctx context.Context, c *harness.Cluster) error {
	nodes, err := d.pick(ctx, c, d.Target)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := c.FillDisk(n); err != nil {
			return err
		}
	}
	return nil
}

func (d *DiskFull) Heal(context.Context) error {
	nodes, c := d.take()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, c.FreeDisk(n))
	}
	return errors.Join(errs...)
}
