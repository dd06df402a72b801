package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// codeManager makes a node's blob store part of the cluster: uploads are
// replicated to R nodes along the ring before they become visible
// (code_replicate.go), missing blobs are fetched from the nodes the Raft
// record names (code_fetch.go), the leader restores lost copies and
// collects unreferenced blobs, and every node audits, scrubs and cleans
// its own store (code_repair.go). Blobs travel over the Blob gRPC service
// (code_transport.go).
type codeManager struct {
	cfg      CodeConfig
	log      *slog.Logger
	self     string
	store    *blob.Store
	meta     codeMeta
	live     func(id string) bool
	isLeader func() bool
	peers    *blobPeers
	ring     codeRing
	counters codeCounters

	// ctx ends when the agent closes; fetches and loops run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	fetches map[string]*fetchCall // id (+ "+zip" for complete copies) -> fetch in flight
	refetch map[string]bool       // blobs deleted as corrupt, not fetched back yet
	pinned  map[string]int        // blobs an upload in progress holds (never collected)

	// kick wakes the node loop early (a corruption was found).
	kick chan struct{}

	// Failpoints for tests, off in production.
	refusePushes atomic.Bool // the Push handler refuses every blob
	pauseRepair  atomic.Bool // the leader pass restores no copies
}

// codeMeta is the replicated state as the code manager uses it: the
// local replica for every decision, writes through the leader.
// *Metadata implements it.
type codeMeta interface {
	Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error)
	View() *fsm.View
}

// codeDeps are what the code manager takes from the agent.
type codeDeps struct {
	self     string
	store    *blob.Store
	meta     codeMeta
	sec      *cluster.Security
	isAlive  func(id string) bool // gossip liveness
	addrOf   func(id string) (string, bool)
	isLeader func() bool
	metrics  prometheus.Registerer
	logger   *slog.Logger
}

func newCodeManager(cfg CodeConfig, d codeDeps) (*codeManager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &codeManager{
		cfg: cfg, log: d.logger.With("component", "code"), self: d.self, store: d.store, meta: d.meta,
		live: func(id string) bool {
			return id == d.self || d.isAlive(id)
		},
		isLeader: d.isLeader,
		peers:    &blobPeers{dialer: cluster.NewDialer(d.sec), addrOf: d.addrOf},
		ctx:      ctx, cancel: cancel,
		fetches: map[string]*fetchCall{}, refetch: map[string]bool{}, pinned: map[string]int{},
		kick: make(chan struct{}, 1),
	}
	if err := m.counters.register(d.metrics); err != nil {
		cancel()
		return nil, fmt.Errorf("node: code metrics: %w", err)
	}
	return m, nil
}

// close stops the loops and fetches and closes the peer connections.
func (m *codeManager) close() {
	m.mu.Lock() // ensure checks m.ctx under mu before it adds to wg
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
	m.peers.close()
}

// pin keeps blob id from local collection until the returned func runs.
func (m *codeManager) pin(id string) func() {
	m.mu.Lock()
	m.pinned[id]++
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		if m.pinned[id]--; m.pinned[id] <= 0 {
			delete(m.pinned, id)
		}
		m.mu.Unlock()
	}
}

func (m *codeManager) isPinned(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pinned[id] > 0
}

// stats returns the counters.
func (m *codeManager) stats() CodeStats { return m.counters.snapshot() }

// replicaCount is R for the current membership: min(Replicas, committed
// nodes), at least 1.
func (m *codeManager) replicaCount(v *fsm.View) int {
	return max(min(m.cfg.Replicas, len(v.Nodes())), 1)
}

// codeStore is the Lambda API's view of the code: archive rules as
// InvalidParameterValueException, the account's code storage limit, and
// replication before the API commits the function command.
type codeStore struct {
	m *codeManager
}

func (c *codeStore) Put(ctx context.Context, accountID, function string, zip []byte) (lambdaapi.CodeInfo, error) {
	m := c.m
	id := blob.IDOf(zip)
	v := m.meta.View()
	// A package the account already stores costs nothing more.
	if acct := v.Account(accountID); acct != nil && acct.CodeStorageLimit > 0 && !v.AccountReferencesBlob(accountID, id) {
		if used := v.CodeStorageUsed(accountID); used+int64(len(zip)) > acct.CodeStorageLimit {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: the account stores %d bytes of code; this %d-byte package would pass its limit of %d",
				lambdaapi.ErrCodeStorageExceeded, used, len(zip), acct.CodeStorageLimit)
		}
	}
	// The local copy must survive collection until the record exists.
	defer m.pin(id)()
	// Validation and conversion happen here, before any byte leaves the
	// node: a refused archive is never replicated.
	existed := m.store.HasZip(id)
	man, err := m.store.Put(ctx, zip)
	if err != nil {
		var ce *codepkg.Error
		if errors.As(err, &ce) {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: %s", lambdaapi.ErrInvalidCode, ce.Message)
		}
		if ctx.Err() != nil {
			return lambdaapi.CodeInfo{}, ctx.Err()
		}
		// A failure of this node's store (a full disk, say): its text names
		// host paths, so the tenant gets the step and the log the cause.
		m.log.Warn("upload refused: the package could not be stored", "blob", id, "function", function, "err", err)
		return lambdaapi.CodeInfo{}, &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: "The code package could not be stored on this node; nothing was changed. Retry the request."}
	}
	if err := m.replicate(ctx, man, codePlacementKey(accountID, function), !existed); err != nil {
		m.log.Warn("upload refused: the package could not be replicated", "blob", id, "function", function, "err", err)
		return lambdaapi.CodeInfo{}, &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: "The code package could not be stored durably on enough nodes; nothing was changed. Retry the request."}
	}
	return lambdaapi.CodeInfo{BlobID: man.ZipSHA256Hex, CodeSha256: man.CodeSha256, Size: man.ZipSize, UnpackedSize: man.UnpackedSize}, nil
}

// OpenZip serves the original zip from this node's copy, or from a peer
// that holds one. The bytes are checked against the blob id before the
// first one is returned.
func (c *codeStore) OpenZip(ctx context.Context, blobID string) (io.ReadCloser, int64, error) {
	rc, size, err := c.m.openZip(ctx, blobID)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, errNoSource) || errors.Is(err, os.ErrNotExist) {
		return nil, 0, &lambdaapi.Error{Status: http.StatusNotFound, Type: "ResourceNotFoundException", Message: "Code package not found in the cluster"}
	}
	if err != nil && ctx.Err() == nil {
		c.m.log.Warn("serving a code package failed", "blob", blobID, "err", err)
		return nil, 0, &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: "The code package could not be read right now. Retry the request."}
	}
	return rc, size, err
}

// CodeStats reports what this node's code replication has done.
func (a *Agent) CodeStats() CodeStats { return a.code.stats() }

// ScrubCode verifies every local code package now (the loop does it every
// ScrubInterval) and returns how many were corrupt; those are deleted and
// fetched again.
func (a *Agent) ScrubCode(ctx context.Context) int { return a.code.scrub(ctx) }
