package fault

import (
	"context"
	"errors"

	"github.com/stokehq/stoke/chaos/harness"
)

// Kill crashes its targets with SIGKILL; Heal restarts them from their
// data dirs, as after a power cut.
type Kill struct {
	Target Target
	victims
}

func (k *Kill) Name() string { return "kill(" + k.Target.Name + ")" }

func (k *Kill) Inject(ctx context.Context, c *harness.Cluster) error {
	nodes, err := k.pick(ctx, c, k.Target)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Kill())
	}
	return errors.Join(errs...)
}

func (k *Kill) Heal(context.Context) error {
	nodes, _ := k.take()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Start())
	}
	return errors.Join(errs...)
}

// Pause freezes its targets with SIGSTOP (a long GC pause, a VM stall);
// Heal thaws them with SIGCONT.
type Pause struct {
	Target Target
	victims
}

func (p *Pause) Name() string { return "pause(" + p.Target.Name + ")" }

func (p *Pause) Inject(ctx context.Context, c *harness.Cluster) error {
	nodes, err := p.pick(ctx, c, p.Target)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Pause())
	}
	return errors.Join(errs...)
}

func (p *Pause) Heal(context.Context) error {
	nodes, _ := p.take()
	var errs []error
	for _, n := range nodes {
		if n.Paused() {
			errs = append(errs, n.Resume())
		}
	}
	return errors.Join(errs...)
}
