package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// replicate makes an uploaded blob, already stored and fsynced here,
// durable on R nodes and records them in Raft. Targets are the first R
// live nodes of key's preference list, so the function's preferred nodes
// hold its code; a target that fails is replaced by the next node along
// the ring. This node keeps its copy and is listed too, so a blob
// uploaded through a node outside the preference list has R+1 copies.
//
// The upload succeeds with R copies, or with fewer while fewer than R
// nodes are alive, but never fewer than min(MinReplicas, R). Otherwise,
// or when the record cannot be committed, the copies this upload created
// are dropped again (fresh says whether the local one is among them) and
// an error says why: the caller commits nothing.
func (m *codeManager) replicate(ctx context.Context, man *codepkg.Manifest, key string, fresh bool) error {
	id := man.ZipSHA256Hex
	v := m.meta.View()
	ring := m.ring.get(v)
	r := m.replicaCount(v)
	order := ring.Preferred(key, ring.Len(), m.live)
	need := max(min(r, len(order)), min(m.cfg.MinReplicas, r))

	holders := []string{m.self}
	var created []string
	var mu sync.Mutex
	pushAll := func(peers []string) {
		var wg sync.WaitGroup
		for _, p := range peers {
			wg.Go(func() {
				start := time.Now()
				made, err := m.push(ctx, p, id)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					m.log.Warn("pushing code to a replica failed", "blob", id, "peer", p, "err", err)
					return
				}
				holders = append(holders, p)
				if made {
					created = append(created, p)
				}
				m.log.Debug("pushed code", "blob", id, "peer", p, "created", made, "took", time.Since(start))
			})
		}
		wg.Wait()
	}
	targets := order[:min(r, len(order))]
	pushAll(slices.DeleteFunc(slices.Clone(targets), func(n string) bool { return n == m.self }))
	for _, n := range order[len(targets):] {
		if len(holders) >= r || ctx.Err() != nil {
			break
		}
		if n != m.self {
			pushAll([]string{n})
		}
	}
	if len(holders) < need {
		m.abortUpload(id, created, fresh)
		return fmt.Errorf("%w: %d of the %d required copies of %s (targets %v)", errTooFewCopies, len(holders), need, id, targets)
	}
	slices.Sort(holders)
	_, err := m.meta.Apply(ctx, &fsmpb.PutBlobCmd{Header: &fsmpb.Header{}, Blob: &fsmpb.Blob{
		Id: id, ZipSize: man.ZipSize, PackageSize: man.TarZstSize, UnpackedSize: man.UnpackedSize,
		PackageSha256: man.TarZstSHA256Hex, Replicas: holders, PlacementKey: key,
	}})
	if err != nil {
		m.abortUpload(id, created, fresh)
		return fmt.Errorf("recording the replicas of %s: %w", id, err)
	}
	m.log.Debug("replicated code", "blob", id, "replicas", holders, "key", key)
	return nil
}

// abortUpload removes the copies a refused upload created, unless the
// blob has a record or a reference after all (a concurrent upload of the
// same zip, or a record whose commit outcome was unknown): collection
// deals with those. Best effort: what remains is an unrecorded copy, which
// every node deletes after GCGrace.
func (m *codeManager) abortUpload(id string, peers []string, local bool) {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	for _, p := range peers {
		if err := m.drop(ctx, p, id); err != nil {
			m.log.Info("leaving a refused upload's copy to collection", "blob", id, "peer", p, "err", err)
		}
	}
	v := m.meta.View()
	if local && v.Blob(id) == nil && !v.ReferencedBlobs()[id] {
		if err := m.store.Delete(id); err != nil {
			m.log.Warn("removing a refused upload", "blob", id, "err", err)
		}
	}
}
