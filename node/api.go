package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/stokehq/stoke/node/async"
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
	code  *codeManager
	pool  *runtime.Pool
	api   *lambdaapi.Handler
	// invoker is the node's whole invoke path (admission, routing, the
	// local pool); the API's sync invokes and async delivery both use it.
	invoker lambdaapi.Invoker
	// async is the node's part of the asynchronous invocation queue
	// (async_queue.go); asyncPeers its payload transport.
	async      *async.Queue
	asyncPeers *asyncPeers
}

func (a *Agent) initAPI() error {
	var err error
	a.blobs, err = blob.Open(blob.Config{Dir: filepath.Join(a.cfg.DataDir, "code"), Limits: codepkg.DefaultLimits(),
		UnpackedBudget: a.cfg.Code.UnpackedBudgetBytes, UnpackedDir: a.cfg.Code.UnpackedDir, Logger: a.cfg.Logger})
	if err != nil {
		return err
	}
	a.code, err = newCodeManager(a.cfg.Code, codeDeps{self: a.nodeID, store: a.blobs, meta: a.meta, sec: a.sec,
		isAlive: a.gossip.IsAlive, addrOf: a.grpcAddrOf, isLeader: a.raft.IsLeader, metrics: a.metrics, logger: a.cfg.Logger})
	if err != nil {
		return err
	}
	pc := runtime.DefaultPoolConfig()
	pc.StateDir = filepath.Join(a.cfg.DataDir, "sandboxes")
	pc.LogDir = a.logDir()
	if pc.LogGate, err = runtime.NewLogGate(pc.LogDir, a.cfg.Worker.Logs); err != nil {
		return fmt.Errorf("node: function logs: %w", err)
	}
	pc.Code = a.code
	pc.Logger = a.cfg.Logger
	if a.cfg.Worker.MemoryBudgetMB > 0 {
		pc.MemoryBudgetMB = a.cfg.Worker.MemoryBudgetMB
	}
	if a.cfg.Worker.IdleTimeout > 0 {
		pc.IdleTimeout = a.cfg.Worker.IdleTimeout
	}
	pc.CPUMode, pc.CPUFloorMB = a.cfg.Worker.CPUMode, a.cfg.Worker.CPUFloorMB
	if a.cfg.Worker.InsecureNoSandbox {
		pc.Isolation = runtime.IsolationNone
		a.log.Warn("SANDBOXING IS DISABLED (--insecure-no-sandbox): function code runs as plain processes with the agent's privileges")
	}
	a.pool, err = runtime.NewPool(pc)
	if err != nil {
		return fmt.Errorf("node: sandbox pool: %w", err)
	}
	if a.cfg.Worker.Logs.Retention > 0 {
		a.wg.Add(1)
		go a.sweepLogs(pc.LogGate)
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
	// The invoke path: cluster-wide admission, placement and forwarding
	// around the local pool (routing.go).
	a.invoker = a.initRouting()
	if a.async, err = a.newAsyncQueue(); err != nil {
		return err
	}
	metrics := lambdaapi.NewMetrics(a.metrics)
	a.api, err = lambdaapi.New(lambdaapi.Config{
		Region:     a.cfg.Region,
		Runtimes:   runtime.Runtimes(),
		CodeURLKey: a.secret.Derive("code-url/v1"),
		NodeID:     a.nodeID,
		Logger:     a.cfg.Logger,

		MaxBufferedBodyBytes: a.cfg.MaxBufferedRequestBytes,
	}, lambdaapi.Deps{
		Meta:    a.meta,
		Code:    &codeStore{m: a.code},
		Invoker: a.invoker,
		Async:   a.async,
		Auth:    auth,
		Sealer:  a.sealer,
		Keys:    keyGenerator{},
		Metrics: metrics,
		Usage:   a,
	})
	if err != nil {
		return err
	}
	metricsHandler, err := a.metricsHandler()
	if err != nil {
		return err
	}
	a.mux.Handle("GET /metrics", metricsHandler)
	a.mux.Handle("/", a.api)
	a.async.Start()
	a.code.start()
	return nil
}

func (a *Agent) closeAPI() {
	if a.async != nil {
		_ = a.async.Close()
	}
	if a.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.pool.Close(ctx); err != nil {
			a.log.Warn("closing the sandbox pool", "err", err)
		}
	}
	if a.code != nil {
		a.code.close()
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
// errors into AWS's shape and status (403, or 413 and 500 for a body over
// the limit and a failed credential store).
type sigv4Auth struct{ v *sigv4.Verifier }

func (s *sigv4Auth) AuthenticateHeaders(r *http.Request) (lambdaapi.PayloadCheck, error) {
	p, err := s.v.VerifyHeaders(r.Context(), r)
	if err != nil {
		return nil, authError(err)
	}
	return sigv4Payload{p}, nil
}

// sigv4Payload is the second step of sigv4Auth.
type sigv4Payload struct{ p *sigv4.Pending }

func (s sigv4Payload) AuthenticateBody(body []byte) (lambdaapi.Principal, error) {
	p, err := s.p.VerifyBody(body)
	if err != nil {
		return lambdaapi.Principal{}, authError(err)
	}
	admin, _ := p.Attachment.(bool)
	return lambdaapi.Principal{AccountID: p.AccountID, AccessKeyID: p.AccessKeyID, Admin: admin}, nil
}

func authError(err error) *lambdaapi.Error {
	var se *sigv4.Error
	if errors.As(err, &se) {
		return &lambdaapi.Error{Status: se.Kind.HTTPStatus(), Type: se.Kind.AWSException(), Message: se.Message}
	}
	return &lambdaapi.Error{Status: http.StatusForbidden, Type: "AccessDeniedException", Message: err.Error()}
}

type keyGenerator struct{}

func (keyGenerator) NewAccountID() string              { return NewAccountID() }
func (keyGenerator) NewAccessKey() (id, secret string) { return NewAccessKey() }
func (keyGenerator) KeyContext(keyID string) string    { return KeyContext(keyID) }
