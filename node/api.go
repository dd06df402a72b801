package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/node/sigv4"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/runtime"
)

// This file wires the worker (blob store, sandbox pool, admission) and the
// Lambda API into the agent.

// apiParts are the Agent's API and worker fields.
type apiParts struct {
	blobs *blob.Store
	pool  *runtime.Pool
	api   *lambdaapi.Handler
	// invoker is the node's whole invoke path (admission, routing, the
	// local pool); the API's sync invokes and async delivery both use it.
	invoker lambdaapi.Invoker
}

func (a *Agent) initAPI() error {
	var err error
	a.blobs, err = blob.Open(blob.Config{Dir: filepath.Join(a.cfg.DataDir, "code"), Limits: codepkg.DefaultLimits(), Logger: a.cfg.Logger})
	if err != nil {
		return err
	}
	pc := runtime.DefaultPoolConfig()
	pc.StateDir = filepath.Join(a.cfg.DataDir, "sandboxes")
	pc.LogDir = filepath.Join(a.cfg.DataDir, "logs")
	pc.Code = a.blobs
	pc.Logger = a.cfg.Logger
	if a.cfg.Worker.MemoryBudgetMB > 0 {
		pc.MemoryBudgetMB = a.cfg.Worker.MemoryBudgetMB
	}
	if a.cfg.Worker.IdleTimeout > 0 {
		pc.IdleTimeout = a.cfg.Worker.IdleTimeout
	}
	if a.cfg.Worker.InsecureNoSandbox {
		pc.Isolation = runtime.IsolationNone
		a.log.Warn("SANDBOXING IS DISABLED (--insecure-no-sandbox): function code runs as plain processes with the agent's privileges")
	}
	a.pool, err = runtime.NewPool(pc)
	if err != nil {
		return fmt.Errorf("node: sandbox pool: %w", err)
	}

	var auth lambdaapi.Authenticator
	if !a.cfg.NoAuth {
		vcfg := sigv4.DefaultConfig()
		vcfg.Region = a.cfg.Region
		v, err := sigv4.New(vcfg, &credentialStore{meta: a.meta, sealer: a.sealer})
		if err != nil {
			return err
		}
		auth = &sigv4Auth{v: v}
	}
	a.invoker = a.newInvoker()
	metrics := lambdaapi.NewMetrics(a.metrics)
	a.api, err = lambdaapi.New(lambdaapi.Config{
		Region:     a.cfg.Region,
		Runtimes:   runtime.Runtimes(),
		CodeURLKey: a.secret.Derive("code-url/v1"),
		NodeID:     a.nodeID,
		Logger:     a.cfg.Logger,
	}, lambdaapi.Deps{
		Meta:    a.meta,
		Code:    &codeStore{blobs: a.blobs, meta: a.meta},
		Invoker: a.invoker,
		Auth:    auth,
		Sealer:  a.sealer,
		Keys:    keyGenerator{},
		Metrics: metrics,
		Usage:   a,
	})
	if err != nil {
		return err
	}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	a.mux.Handle("/", a.api)
	return nil
}

// newInvoker builds the node's invoke path: cluster-wide admission,
// placement and forwarding around the local pool (routing.go).
func (a *Agent) newInvoker() lambdaapi.Invoker { return a.initRouting() }

func (a *Agent) closeAPI() {
	if a.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.pool.Close(ctx); err != nil {
			a.log.Warn("closing the sandbox pool", "err", err)
		}
	}
}

// Pool is the node's sandbox pool.
func (a *Agent) Pool() *runtime.Pool { return a.pool }

// Blobs is the node's code blob store.
func (a *Agent) Blobs() *blob.Store { return a.blobs }

// protectAdmin puts SigV4 authentication and the admin-key check in front
// of a handler registered outside the Lambda API (the cluster endpoints).
func (a *Agent) protectAdmin(pattern string, h http.HandlerFunc) {
	a.mux.Handle(pattern, a.api.RequireAdmin(h))
}

// credentialStore resolves access keys for SigV4 from the replicated store.
// A key created a moment ago on another node may not have reached this
// replica yet, so a miss is retried after a consistent read.
type credentialStore struct {
	meta   *Metadata
	sealer interface {
		Open(sealed []byte, context string) ([]byte, error)
	}
}

func (c *credentialStore) SecretFor(ctx context.Context, keyID string) (string, sigv4.Principal, error) {
	key := c.meta.View().AccessKey(keyID)
	if key == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		v, err := c.meta.ConsistentView(cctx)
		cancel()
		if err == nil {
			key = v.AccessKey(keyID)
		}
	}
	if key == nil || key.Status != fsmpb.KeyStatus_KEY_STATUS_ACTIVE {
		return "", sigv4.Principal{}, fmt.Errorf("%w: %s", sigv4.ErrUnknownAccessKey, keyID)
	}
	secret, err := c.sealer.Open(key.SecretSealed, KeyContext(key.Id))
	if err != nil {
		return "", sigv4.Principal{}, fmt.Errorf("open secret of %s: %w", keyID, err)
	}
	return string(secret), sigv4.Principal{AccountID: key.AccountId, AccessKeyID: key.Id, Attachment: key.Admin}, nil
}

// sigv4Auth adapts the verifier to the API's Authenticator, turning its
// errors into 403s in AWS's shape.
type sigv4Auth struct{ v *sigv4.Verifier }

func (s *sigv4Auth) Authenticate(r *http.Request, body []byte) (lambdaapi.Principal, error) {
	p, err := s.v.Verify(r.Context(), r, body)
	if err != nil {
		var se *sigv4.Error
		if errors.As(err, &se) {
			return lambdaapi.Principal{}, &lambdaapi.Error{Status: http.StatusForbidden, Type: se.Kind.AWSException(), Message: se.Message}
		}
		return lambdaapi.Principal{}, &lambdaapi.Error{Status: http.StatusForbidden, Type: "AccessDeniedException", Message: err.Error()}
	}
	admin, _ := p.Attachment.(bool)
	return lambdaapi.Principal{AccountID: p.AccountID, AccessKeyID: p.AccessKeyID, Admin: admin}, nil
}

// codeStore is the Lambda API's view of the blob store: archive rules as
// InvalidParameterValueException, and the account's code storage limit.
type codeStore struct {
	blobs *blob.Store
	meta  *Metadata
}

func (c *codeStore) Put(ctx context.Context, accountID string, zip []byte) (lambdaapi.CodeInfo, error) {
	v := c.meta.View()
	if acct := v.Account(accountID); acct != nil && acct.CodeStorageLimit > 0 {
		if used := codeStorageUsed(v, accountID); used+int64(len(zip)) > acct.CodeStorageLimit {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: the account stores %d bytes of code; this %d-byte package would pass its limit of %d",
				lambdaapi.ErrCodeStorageExceeded, used, len(zip), acct.CodeStorageLimit)
		}
	}
	m, err := c.blobs.Put(ctx, zip)
	if err != nil {
		var ce *codepkg.Error
		if errors.As(err, &ce) {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: %s", lambdaapi.ErrInvalidCode, ce.Message)
		}
		return lambdaapi.CodeInfo{}, err
	}
	return lambdaapi.CodeInfo{BlobID: m.ZipSHA256Hex, CodeSha256: m.CodeSha256, Size: m.ZipSize, UnpackedSize: m.UnpackedSize}, nil
}

func (c *codeStore) OpenZip(_ context.Context, blobID string) (io.ReadCloser, int64, error) {
	rc, size, err := c.blobs.OpenZip(blobID)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil, 0, &lambdaapi.Error{Status: http.StatusNotFound, Type: "ResourceNotFoundException", Message: "Code package not found on this node"}
	}
	return rc, size, err
}

// codeStorageUsed sums the distinct code packages an account's functions
// and versions reference, as Lambda counts TotalCodeSize.
func codeStorageUsed(v *fsm.View, accountID string) int64 {
	seen := map[string]bool{}
	var used int64
	add := func(cfg *fsmpb.FunctionConfig) {
		if !seen[cfg.BlobId] {
			seen[cfg.BlobId] = true
			used += cfg.CodeSize
		}
	}
	for _, fn := range v.Functions(accountID, "", 0) {
		add(fn.Config)
		for _, ver := range v.Versions(accountID, fn.Name) {
			add(ver.Config)
		}
	}
	return used
}

type keyGenerator struct{}

func (keyGenerator) NewAccountID() string              { return NewAccountID() }
func (keyGenerator) NewAccessKey() (id, secret string) { return NewAccessKey() }
func (keyGenerator) KeyContext(keyID string) string    { return KeyContext(keyID) }
