package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

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
// serving node.
func (c *Cluster) verifyCredentials(ctx context.Context, cr node.Credentials) error {
	for _, n := range c.nodes {
		if !n.Serving() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Endpoint()+"/stoke/v1/cluster/members", nil)
		if err != nil {
			return err
		}
		empty := sha256.Sum256(nil)
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey},
			req, hex.EncodeToString(empty[:]), "lambda", cr.Region, time.Now()); err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %d to an admin request", n.ID, resp.StatusCode)
		}
		return nil
	}
	return errors.New("no node is serving")
}
