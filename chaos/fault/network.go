package fault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stokehq/stoke/chaos/harness"
)

// Direction says which way a partition cuts.
type Direction int

const (
	// Both: neither side hears the other.
	Both Direction = iota
	// Deaf: the targets stop hearing the rest; the rest still hear them.
	Deaf
	// Mute: the rest stop hearing the targets; the targets still hear them.
	Mute
)

func (d Direction) String() string {
	switch d {
	case Both:
		return "both"
	case Deaf:
		return "deaf"
	case Mute:
		return "mute"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Partition separates its targets from the other nodes. Clients on the
// test machine still reach every node, so a scenario can observe what an
// isolated node answers. Needs the namespace network.
type Partition struct {
	Target Target
	Dir    Direction
	victims
}

func (p *Partition) Name() string { return fmt.Sprintf("partition(%s|rest,%s)", p.Target.Name, p.Dir) }

func (p *Partition) Inject(ctx context.Context, c *harness.Cluster) error {
	side, err := p.pick(ctx, c, p.Target)
	if err != nil {
		return err
	}
	rest := c.Others(side...)
	switch p.Dir {
	case Both:
		return c.Partition(ctx, side)
	case Deaf:
		for _, n := range side {
			if err := c.Cut(ctx, rest, n); err != nil {
				return err
			}
		}
	case Mute:
		for _, n := range rest {
			if err := c.Cut(ctx, side, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Partition) Heal(ctx context.Context) error {
	if _, c := p.take(); c != nil {
		return c.HealNetwork(ctx)
	}
	return nil
}

// Loss drops a share P of the packets between each target and the other
// nodes, both ways. Needs the namespace network.
type Loss struct {
	Target Target
	P      float64
	victims
}

func (l *Loss) Name() string { return fmt.Sprintf("loss(%s,%.0f%%)", l.Target.Name, 100*l.P) }

func (l *Loss) Inject(ctx context.Context, c *harness.Cluster) error {
	nodes, err := l.pick(ctx, c, l.Target)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := c.Loss(ctx, n, l.P); err != nil {
			return err
		}
	}
	return nil
}

func (l *Loss) Heal(ctx context.Context) error {
	if _, c := l.take(); c != nil {
		return c.HealNetwork(ctx)
	}
	return nil
}

// Latency delays every packet its targets send by Delay ± Jitter with tc
// netem. Inject returns harness.ErrUnsupported when the kernel has no
// netem qdisc (CONFIG_NET_SCH_NETEM), as on some minimal VM kernels.
type Latency struct {
	Target        Target
	Delay, Jitter time.Duration
	victims
}

func (l *Latency) Name() string {
	return fmt.Sprintf("latency(%s,%v±%v)", l.Target.Name, l.Delay, l.Jitter)
}

func (l *Latency) Inject(ctx context.Context, c *harness.Cluster) error {
	nodes, err := l.pick(ctx, c, l.Target)
	if err != nil {
		return err
	}
	args := []string{"delay", fmt.Sprintf("%dus", l.Delay.Microseconds())}
	if l.Jitter > 0 {
		args = append(args, fmt.Sprintf("%dus", l.Jitter.Microseconds()))
	}
	for _, n := range nodes {
		if err := c.Netem(ctx, n, args...); err != nil {
			return err
		}
	}
	return nil
}

func (l *Latency) Heal(ctx context.Context) error {
	nodes, c := l.take()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, c.ClearNetem(ctx, n))
	}
	return errors.Join(errs...)
}
