package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"

	"github.com/stokehq/stoke/node/blob"
)

// fetchCall is one fetch in flight, shared by every caller that needs the
// same blob meanwhile.
type fetchCall struct {
	done   chan struct{}
	source string
	err    error
}

// ensure makes blob id present on this node, fetching it from a peer when
// it is missing: the package (enough to run the code), or a complete copy
// with the zip when complete. Concurrent callers for the same blob share
// one fetch, which runs under the manager's context rather than the first
// caller's, so a caller that gives up fails nobody else. Sources are
// tried in order: the given ones, the replicas the Raft record names
// (live ones first), then the other live nodes; a failed source is
// followed by the next. It returns the node the blob came from (this
// node's id when it was already here).
func (m *codeManager) ensure(ctx context.Context, id string, complete bool, sources []string) (string, error) {
	key := id
	if complete {
		key += "+zip"
	}
	if m.has(id, complete) {
		return m.self, nil
	}
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		return "", fmt.Errorf("node: fetching %s: %w", id, m.ctx.Err())
	}
	call, running := m.fetches[key]
	if running {
		m.counters.fetchWaiters.Add(1)
	} else {
		call = &fetchCall{done: make(chan struct{})}
		m.fetches[key] = call
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			call.source, call.err = m.fetch(id, complete, sources)
			m.mu.Lock()
			delete(m.fetches, key)
			m.mu.Unlock()
			close(call.done)
		}()
	}
	m.mu.Unlock()
	select {
	case <-call.done:
		return call.source, call.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (m *codeManager) has(id string, complete bool) bool {
	if complete {
		return m.store.HasZip(id)
	}
	return m.store.Has(id)
}

// fetch runs one shared fetch.
func (m *codeManager) fetch(id string, complete bool, explicit []string) (string, error) {
	if m.has(id, complete) {
		return m.self, nil // a fetch that just finished brought it
	}
	m.counters.fetches.Add(1)
	var errs []error
	for _, peer := range m.sourcesFor(id, explicit) {
		err := m.fetchFrom(m.ctx, peer, id, complete)
		if err == nil {
			m.log.Debug("fetched code", "blob", id, "from", peer, "complete", complete)
			m.mu.Lock()
			if m.refetch[id] {
				delete(m.refetch, id)
				m.counters.refetched.Add(1)
			}
			m.mu.Unlock()
			return peer, nil
		}
		errs = append(errs, err)
		m.log.Info("fetching code from a peer failed; trying the next", "blob", id, "peer", peer, "err", err)
		if m.ctx.Err() != nil {
			break
		}
	}
	m.counters.fetchErrors.Add(1)
	if len(errs) == 0 {
		errs = append(errs, errors.New("no live node to ask"))
	}
	return "", fmt.Errorf("%w: %s: %w", errNoSource, id, errors.Join(errs...))
}

// sourcesFor lists the nodes to fetch blob id from, in the order to try
// them: explicit ones, the record's live replicas (rotated by this node's
// id, so that nodes missing the same blob spread over its replicas), the
// other live nodes (which may cache the package), then the record's
// replicas gossip thinks dead (gossip may be wrong). Never this node.
func (m *codeManager) sourcesFor(id string, explicit []string) []string {
	v := m.meta.View()
	var liveReplicas, deadReplicas []string
	if rec := v.Blob(id); rec != nil {
		for _, n := range rec.Replicas {
			if m.live(n) {
				liveReplicas = append(liveReplicas, n)
			} else {
				deadReplicas = append(deadReplicas, n)
			}
		}
	}
	if len(liveReplicas) > 1 {
		h := fnv.New32a()
		h.Write([]byte(m.self))
		k := int(h.Sum32() % uint32(len(liveReplicas)))
		liveReplicas = append(liveReplicas[k:], liveReplicas[:k]...)
	}
	var others []string
	for _, n := range v.Nodes() {
		if m.live(n.Id) {
			others = append(others, n.Id)
		}
	}
	var out []string
	for _, n := range slices.Concat(explicit, liveReplicas, others, deadReplicas) {
		if n != m.self && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Acquire implements runtime.CodeSource over the blob store, fetching
// the package from a peer first when this node lacks it. A local copy
// that fails its checksum while being unpacked is deleted and fetched
// again once; corrupt bytes are never unpacked, so no sandbox runs them.
//
// Fetching and unpacking are the platform's work, not the function's
// init: they are bounded by TransferTimeout and the node's lifetime, not
// by the caller's deadline (the pool passes its InitTimeout), so a large
// package on a slow disk makes a slow cold start rather than a failed
// one. Cancelling ctx still stops the wait.
func (m *codeManager) Acquire(ctx context.Context, id string) (string, func(), error) {
	wctx, cancel := context.WithTimeout(m.ctx, m.cfg.TransferTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	ctx = wctx
	for attempt := 0; ; attempt++ {
		if !m.store.Has(id) {
			if _, err := m.ensure(ctx, id, false, nil); err != nil {
				return "", nil, err
			}
		}
		dir, release, err := m.store.Acquire(ctx, id)
		if err == nil || attempt > 0 || !errors.Is(err, blob.ErrCorrupt) {
			return dir, release, err
		}
		m.corruptionFound(id, err)
	}
}

// corruptionFound handles a local copy that failed a checksum: it is
// verified again (several readers may report the same copy), deleted,
// and the node loop is woken to fetch a complete copy back if this node
// is a recorded replica (a caller that needs the code fetches at once).
func (m *codeManager) corruptionFound(id string, cause error) {
	if err := m.store.Verify(id); !errors.Is(err, blob.ErrCorrupt) {
		return // already replaced, or gone
	}
	m.counters.corruptions.Add(1)
	m.log.Error("a local code package is corrupt; deleting it and fetching it again", "blob", id, "err", cause)
	if err := m.store.Delete(id); err != nil {
		m.log.Error("deleting a corrupt code package", "blob", id, "err", err)
	}
	m.mu.Lock()
	m.refetch[id] = true
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// openZip returns blob id's original zip, verified before its first byte
// is returned: the local copy if it is sound, else a copy streamed from a
// peer into a temporary file (unlinked at once) and checked.
func (m *codeManager) openZip(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !blob.ValidID(id) {
		return nil, 0, fmt.Errorf("%w: %q", blob.ErrNotFound, id)
	}
	if m.store.HasZip(id) {
		err := m.store.VerifyZip(id)
		if err == nil {
			return m.store.OpenZip(id)
		}
		if !errors.Is(err, blob.ErrCorrupt) {
			return nil, 0, err
		}
		m.corruptionFound(id, err)
	}
	f, err := m.store.CreateTemp("download-")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name())
	var errs []error
	for _, peer := range m.sourcesFor(id, nil) {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, 0, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, err
		}
		h := sha256.New()
		n, err := m.fetchZipTo(ctx, peer, id, io.MultiWriter(f, h))
		if err == nil && hex.EncodeToString(h.Sum(nil)) != id {
			err = fmt.Errorf("%s: %w: zip digest mismatch", peer, blob.ErrCorrupt)
		}
		if err == nil {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return nil, 0, err
			}
			return f, n, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	f.Close()
	return nil, 0, fmt.Errorf("%w: zip of %s: %w", errNoSource, id, errors.Join(errs...))
}
