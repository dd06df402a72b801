package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stokehq/stoke/chaos/check"
	"github.com/stokehq/stoke/node"
)

// Admin calls Stoke's admin endpoints (/stoke/v1/...) with SigV4-signed
// raw HTTP, signing name "lambda" like the API.
type Admin struct {
	creds node.Credentials
	http  *http.Client
}

// NewAdmin returns an admin client signing with creds (an admin key).
func NewAdmin(creds node.Credentials) *Admin {
	hc := newHTTPClient()
	hc.Timeout = 5 * time.Second
	return &Admin{creds: creds, http: hc}
}

// Close releases the client's idle connections.
func (a *Admin) Close() { a.http.CloseIdleConnections() }

// Do sends a signed request to endpoint+path and decodes a JSON answer
// into out (when not nil). Non-2xx answers are errors carrying the body.
func (a *Admin) Do(ctx context.Context, method, endpoint, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: a.creds.AccessKeyID, SecretAccessKey: a.creds.SecretAccessKey},
		req, hex.EncodeToString(sum[:]), "lambda", a.creds.Region, time.Now()); err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s%s: %d %s", method, endpoint, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// StateHash asks a node for its replica's applied index and state hash.
func (a *Admin) StateHash(ctx context.Context, endpoint string) (check.NodeState, error) {
	var sh node.StateHash
	if err := a.Do(ctx, http.MethodGet, endpoint, "/stoke/v1/cluster/state-hash", nil, &sh); err != nil {
		return check.NodeState{}, err
	}
	return check.NodeState{Node: sh.Node, AppliedIndex: sh.AppliedIndex, Hash: sh.Hash}, nil
}

// Members asks a node for its view of the cluster's members.
func (a *Admin) Members(ctx context.Context, endpoint string) ([]node.MemberInfo, error) {
	var out struct {
		Members []node.MemberInfo `json:"members"`
	}
	err := a.Do(ctx, http.MethodGet, endpoint, "/stoke/v1/cluster/members", nil, &out)
	return out.Members, err
}
