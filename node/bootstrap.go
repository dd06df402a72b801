package node

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Account limits a new account starts with (Lambda's defaults).
const (
	DefaultConcurrencyLimit  = 1000
	DefaultUnreservedMinimum = 100
	DefaultCodeStorageLimit  = 75 << 30
)

// Request ids of the bootstrap commands: fixed, so a leader that retries
// bootstrap after a crash cannot create a second admin account or key.
const (
	bootstrapKeyDescription = "bootstrap admin key"
	bootstrapAccountRequest = "stoke-bootstrap-account"
	bootstrapKeyRequest     = "stoke-bootstrap-admin-key"
)

// nodeIDFromDir returns the node id stored in dataDir, creating one on
// first start. A configured id must match the stored one.
func nodeIDFromDir(dataDir, configured string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if configured != "" && configured != stored {
			return "", fmt.Errorf("node: data dir %s belongs to node %q, not %q", dataDir, stored, configured)
		}
		return stored, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	id := configured
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s-%s", sanitizeID(host), randomString(6))
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:n]
}

// NewAccountID returns a random 12-digit account id.
func NewAccountID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e11))
	return fmt.Sprintf("%012d", n.Int64()+1e11)
}

// NewAccessKey returns an access key id in AWS's shape (AKIA + 16) and a
// 40-character secret.
func NewAccessKey() (id, secret string) {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	id = "AKIA" + base32.StdEncoding.EncodeToString(b)[:16]
	s := make([]byte, 30)
	_, _ = rand.Read(s)
	return id, base64.StdEncoding.EncodeToString(s)
}

// KeyContext is the sealing context of an access key's secret.
func KeyContext(keyID string) string { return "access-key:" + keyID }

// Credentials is the admin key handed to the operator at bootstrap.
type Credentials struct {
	AccountID       string
	AccessKeyID     string
	SecretAccessKey string
	Region          string
	Endpoint        string
}

// Profile renders c in AWS CLI credentials-file format.
func (c Credentials) Profile(name string) string {
	return fmt.Sprintf("# Stoke account %s, endpoint %s\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = %s\n",
		c.AccountID, c.Endpoint, name, c.AccessKeyID, c.SecretAccessKey, c.Region)
}

// ReadCredentials parses a credentials file written at bootstrap.
func ReadCredentials(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# Stoke account "); ok {
			fields := strings.Fields(strings.ReplaceAll(rest, ",", ""))
			if len(fields) >= 3 {
				c.AccountID, c.Endpoint = fields[0], fields[2]
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		case "region":
			c.Region = strings.TrimSpace(v)
		}
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.AccountID == "" {
		return c, fmt.Errorf("node: %s is not a Stoke credentials file", path)
	}
	return c, nil
}

func writeCredentials(path string, c Credentials) error {
	return writePrivateFile(path, []byte(c.Profile("stoke")))
}

// writePrivateFile replaces path with data, 0600, through a temporary file
// renamed into place. A leftover temporary file is removed first: WriteFile
// would keep its permissions, whatever they are.
func writePrivateFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ensureBootstrap runs on a new leader: when the cluster has no account
// yet it creates the admin account and its first access key. The key is
// written to the credentials file before it is committed, so a crash in
// between is repaired by the next attempt, which reuses the file's key.
func (a *Agent) ensureBootstrap(ctx context.Context) error {
	if len(a.meta.View().Accounts()) > 0 {
		a.retireUncommittedCredentials()
		return nil
	}
	path := a.cfg.credentialsFile()
	creds, err := ReadCredentials(path)
	if err != nil {
		id, secret := NewAccessKey()
		creds = Credentials{AccountID: NewAccountID(), AccessKeyID: id, SecretAccessKey: secret}
	}
	creds.Region = a.cfg.Region
	creds.Endpoint = "http://" + a.HTTPAddr()
	if err := writeCredentials(path, creds); err != nil {
		return fmt.Errorf("node: write credentials: %w", err)
	}
	sealed, err := a.sealer.Seal([]byte(creds.SecretAccessKey), KeyContext(creds.AccessKeyID))
	if err != nil {
		return err
	}
	if _, err := a.meta.Apply(ctx, &fsmpb.CreateAccountCmd{
		Header: &fsmpb.Header{RequestId: bootstrapAccountRequest},
		Account: &fsmpb.Account{Id: creds.AccountID, Name: "admin", ConcurrencyLimit: DefaultConcurrencyLimit,
			UnreservedMinimum: DefaultUnreservedMinimum, CodeStorageLimit: DefaultCodeStorageLimit},
	}); err != nil && fsm.CodeOf(err) != fsm.CodeConflict {
		return fmt.Errorf("node: bootstrap account: %w", err)
	}
	if _, err := a.meta.Apply(ctx, &fsmpb.CreateAccessKeyCmd{
		Header: &fsmpb.Header{RequestId: bootstrapKeyRequest},
		Key: &fsmpb.AccessKey{Id: creds.AccessKeyID, SecretSealed: sealed, AccountId: creds.AccountID,
			Admin: true, Description: bootstrapKeyDescription},
	}); err != nil && fsm.CodeOf(err) != fsm.CodeConflict {
		return fmt.Errorf("node: bootstrap admin key: %w", err)
	}
	switch {
	case a.cfg.SecretConsole != nil:
		fmt.Fprintf(a.cfg.SecretConsole, "\nStoke created the admin access key. It is shown once here and kept in %s (owner-only):\n\n%s\n",
			path, creds.Profile("stoke"))
	case a.cfg.Console != nil:
		fmt.Fprintf(a.cfg.Console, "\nStoke created the admin access key %s; its secret is in %s (owner-only). Print it with: stoke credentials --data-dir %s\n",
			creds.AccessKeyID, path, a.cfg.DataDir)
	}
	a.log.Info("created the admin account and access key; credentials written once to the file below (owner-only)",
		"account", creds.AccountID, "access_key_id", creds.AccessKeyID, "credentials_file", path)
	return nil
}

// retireUncommittedCredentials moves aside a credentials file whose key the
// cluster never committed: this node wrote it as leader, then lost the
// leadership before the key was applied, and another leader bootstrapped
// the cluster with its own key. Left in place, the file would hand the
// operator a key that does not work.
func (a *Agent) retireUncommittedCredentials() {
	path := a.cfg.credentialsFile()
	creds, err := ReadCredentials(path)
	if err != nil {
		return
	}
	// Decide only once the bootstrap key is committed: it is then either
	// this file's key or another leader's.
	committed := a.bootstrapKeyID()
	if committed == "" || committed == creds.AccessKeyID {
		return
	}
	if err := os.Rename(path, path+".uncommitted"); err != nil {
		a.log.Warn("could not move aside an uncommitted credentials file", "file", path, "err", err)
		return
	}
	a.log.Warn("this node's credentials file held a key the cluster never committed; moved it aside (the admin credentials are on the node that bootstrapped the cluster)",
		"file", path+".uncommitted")
}

// watchCredentials retires an uncommitted credentials file once this
// replica has caught up with a bootstrapped cluster.
func (a *Agent) watchCredentials() {
	defer a.wg.Done()
	ctx, cancel := a.untilStop(context.Background())
	defer cancel()
	store := a.raft.Store()
	for {
		// The index is read before the check, so an entry applied in
		// between ends the wait at once.
		idx := store.AppliedIndex()
		if a.bootstrapKeyID() != "" {
			a.retireUncommittedCredentials()
			return
		}
		if err := store.WaitForIndex(ctx, idx+1); err != nil {
			return // the agent stops
		}
	}
}

// bootstrapKeyID is the id of the committed bootstrap admin key, "" while
// this replica has none.
func (a *Agent) bootstrapKeyID() string {
	id := ""
	for _, k := range a.meta.View().AccessKeys("") {
		if k.Description == bootstrapKeyDescription {
			id = k.Id
		}
	}
	return id
}

// untilStop returns a context derived from parent that also ends when the
// agent stops.
func (a *Agent) untilStop(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
