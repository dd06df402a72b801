package harness

import (
	"context"
	"errors"
	"fmt"
)

// Packet-level faults. They need the namespace network; on loopback they
// return ErrUnsupported.

func (c *Cluster) filterNet() (filterNet, error) {
	fn, ok := c.net.(filterNet)
	if !ok {
		return nil, fmt.Errorf("%w: packet faults need the namespace network, this cluster runs on %s", ErrUnsupported, c.net.Mode())
	}
	return fn, nil
}

// Cut makes node to drop every packet from the nodes in from: a one-way
// partition (to no longer hears them; they still hear to). Clients on the
// test machine still reach every node.
func (c *Cluster) Cut(ctx context.Context, from []*Node, to *Node) error {
	fn, err := c.filterNet()
	if err != nil {
		return err
	}
	var ips []string
	for _, n := range from {
		if n != to {
			ips = append(ips, n.IP)
		}
	}
	return fn.Drop(ctx, to.Index, ips)
}

// Partition cuts every link between side and the other nodes, both ways.
func (c *Cluster) Partition(ctx context.Context, side []*Node) error {
	rest := c.Others(side...)
	for _, a := range side {
		if err := c.Cut(ctx, rest, a); err != nil {
			return err
		}
	}
	for _, b := range rest {
		if err := c.Cut(ctx, side, b); err != nil {
			return err
		}
	}
	return nil
}

// Loss makes node n drop a share p of the packets it gets from the other
// nodes, and the others drop the same share of n's.
func (c *Cluster) Loss(ctx context.Context, n *Node, p float64) error {
	fn, err := c.filterNet()
	if err != nil {
		return err
	}
	rest := c.Others(n)
	var ips []string
	for _, o := range rest {
		ips = append(ips, o.IP)
	}
	if err := fn.Loss(ctx, n.Index, ips, p); err != nil {
		return err
	}
	for _, o := range rest {
		if err := fn.Loss(ctx, o.Index, []string{n.IP}, p); err != nil {
			return err
		}
	}
	return nil
}

// HealNetwork removes every drop and loss rule on every node.
func (c *Cluster) HealNetwork(ctx context.Context) error {
	fn, err := c.filterNet()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, fn.ClearFilters(ctx, n.Index))
	}
	return errors.Join(errs...)
}

// Netem shapes what node n sends with tc netem (arguments after "netem",
// e.g. "delay", "100ms", "20ms"). ErrUnsupported when the kernel lacks
// the netem qdisc.
func (c *Cluster) Netem(ctx context.Context, n *Node, args ...string) error {
	fn, err := c.filterNet()
	if err != nil {
		return err
	}
	return fn.Netem(ctx, n.Index, args...)
}

// ClearNetem removes node n's netem qdisc.
func (c *Cluster) ClearNetem(ctx context.Context, n *Node) error {
	fn, err := c.filterNet()
	if err != nil {
		return err
	}
	return fn.ClearNetem(ctx, n.Index)
}
