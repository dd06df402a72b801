package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/node"
)

// findCredentials sets c.creds to the admin credentials the cluster
// accepts. The first leader writes its key to its own data dir before it
// commits it, so a leader that lost leadership in between leaves a file
// whose key was never committed, and the next leader writes another in
// its own dir. A candidate counts once a signed admin request with it
// succeeds.
func (c *Cluster) findCredentials(ctx context.Context) error {
	var tried []error
	for _, nd := range c.nodes {
		cr, err := node.ReadCredentials(filepath.Join(nd.DataDir, "credentials"))
		if err != nil {
			continue
		}
		if err := c.verifyCredentials(ctx, cr); err != nil {
			tried = append(tried, fmt.Errorf("credentials in %s: %w", nd.ID, err))
			continue
		}
		c.creds = cr
		return nil
	}
	if len(tried) == 0 {
		return errors.New("no node has written the admin credentials yet")
	}
	return errors.Join(tried...)
}

// verifyCredentials makes one admin request signed with cr to the first
// serving node (2 s at most, like the harness's other requests).
func (c *Cluster) verifyCredentials(ctx context.Context, cr node.Credentials) error {
	for _, n := range c.nodes {
		if !n.Serving() {
			continue
		}
		admin := client.NewAdmin(cr)
		defer admin.Close()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := admin.Members(ctx, n.Endpoint()); err != nil {
			return fmt.Errorf("%s refused an admin request: %w", n.ID, err)
		}
		return nil
	}
	return errors.New("no node is serving")
}
