package node

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/placement"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Repair and collection run in one loop per node, every RepairInterval
// (and at once after a corruption was found):
//
//   - every node audits the records that name it (a missing or corrupt
//     copy is fetched back from another replica, or the node takes its
//     name off the record so that the leader places the copy elsewhere),
//     deletes copies of blobs that have had neither a record nor a
//     reference for GCGrace, and evicts unpacked trees over the budget
//     (a second loop scrubs every local blob each ScrubInterval);
//   - the leader additionally takes removed nodes off the records, asks
//     nodes along each blob's ring to pull a copy until R live replicas
//     exist, records blobs that functions reference but no record names
//     (older data, or a record collected under a very slow upload), and
//     proposes a CollectBlobs pass when one would change something.
//
// Every step is idempotent and driven by the replicated records and the
// local store, so a leader change or a crash mid-pass only delays work.

// start runs the repair loop and the scrub loop until close.
func (m *codeManager) start() {
	m.wg.Add(2)
	go m.run()
	go m.scrubLoop()
}

func (m *codeManager) run() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.RepairInterval)
	defer tick.Stop()
	unrecorded := map[string]time.Time{}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		case <-m.kick:
		}
		m.nodePass(m.ctx, unrecorded)
		if m.isLeader() {
			m.leaderPass(m.ctx)
		}
	}
}

// scrubLoop verifies every local blob each ScrubInterval, apart from the
// repair loop so that reading a large store never delays a repair.
func (m *codeManager) scrubLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ScrubInterval)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
			if n := m.scrub(m.ctx); n > 0 {
				m.log.Warn("the scrub found corrupt code packages; they are being fetched again", "corrupt", n)
			}
		}
	}
}

// nodePass is the work every node does on its own store.
func (m *codeManager) nodePass(ctx context.Context, unrecorded map[string]time.Time) {
	v := m.meta.View()
	for _, b := range v.Blobs() {
		if ctx.Err() != nil {
			return
		}
		if !slices.Contains(b.Replicas, m.self) || m.store.HasZip(b.Id) {
			continue
		}
		if _, err := m.ensure(ctx, b.Id, true, nil); err != nil {
			m.log.Warn("a recorded copy is missing here and could not be fetched back; leaving it to repair elsewhere", "blob", b.Id, "err", err)
			m.updateReplicas(ctx, b.Id, nil, []string{m.self})
		}
	}
	m.collectLocal(v, unrecorded)
	if _, err := m.store.EvictTrees(m.cfg.UnpackedBudgetBytes); err != nil {
		m.log.Warn("evicting unpacked trees", "err", err)
	}
}

// collectLocal deletes local copies of blobs that have neither a record
// nor a reference once this node has seen them so for GCGrace (and they
// are at least that old), so that a copy pushed for an upload that has not
// committed yet, or a record this replica has not applied yet, is safe.
// Uploads in progress on this node pin their blob. unrecorded carries the
// first sightings from pass to pass.
func (m *codeManager) collectLocal(v *fsm.View, unrecorded map[string]time.Time) {
	ids, err := m.store.List()
	if err != nil {
		m.log.Warn("listing local blobs", "err", err)
		return
	}
	var refs map[string]bool
	now := time.Now()
	seen := map[string]bool{}
	for _, id := range ids {
		if v.Blob(id) != nil || m.isPinned(id) {
			continue
		}
		if refs == nil {
			refs = v.ReferencedBlobs()
		}
		if refs[id] {
			continue
		}
		seen[id] = true
		first, ok := unrecorded[id]
		if !ok {
			unrecorded[id] = now
			continue
		}
		at, err := m.store.StoredAt(id)
		if err != nil || now.Sub(first) < m.cfg.GCGrace || now.Sub(at) < m.cfg.GCGrace {
			continue
		}
		if err := m.store.Delete(id); err != nil {
			m.log.Warn("deleting a collected blob", "blob", id, "err", err)
			continue
		}
		m.counters.collected.Add(1)
		m.log.Info("deleted a code package nothing records or references", "blob", id)
	}
	for id := range unrecorded {
		if !seen[id] {
			delete(unrecorded, id)
		}
	}
}

// scrub verifies every local blob; corrupt copies are deleted and fetched
// back by the next pass.
func (m *codeManager) scrub(ctx context.Context) int {
	ids, err := m.store.List()
	if err != nil {
		m.log.Warn("listing local blobs", "err", err)
		return 0
	}
	corrupt := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		err := m.store.Verify(id)
		m.counters.scrubbed.Add(1)
		switch {
		case errors.Is(err, blob.ErrCorrupt):
			corrupt++
			m.corruptionFound(id, err)
		case err != nil && !errors.Is(err, blob.ErrNotFound):
			m.log.Warn("scrubbing a blob", "blob", id, "err", err)
		}
	}
	return corrupt
}

// leaderPass is the leader's share: prune, repair, adopt, collect.
func (m *codeManager) leaderPass(ctx context.Context) {
	v := m.meta.View()
	committed := map[string]bool{}
	for _, n := range v.Nodes() {
		committed[n.Id] = true
	}
	r := m.replicaCount(v)
	ring := m.ring.get(v)
	for _, b := range v.Blobs() {
		if ctx.Err() != nil {
			return
		}
		var gone, live []string
		for _, n := range b.Replicas {
			switch {
			case !committed[n]:
				gone = append(gone, n)
			case m.live(n):
				live = append(live, n)
			}
		}
		if len(gone) > 0 {
			m.updateReplicas(ctx, b.Id, nil, gone)
		}
		if len(live) < r && !m.pauseRepair.Load() {
			m.repair(ctx, ring, b, live, r)
		}
	}
	m.adopt(ctx, v)
	if now := time.Now().UnixNano(); v.CollectWouldChange(now, int64(m.cfg.GCGrace)) {
		if _, err := m.meta.Apply(ctx, &fsmpb.CollectBlobsCmd{Header: &fsmpb.Header{}, GraceNanos: int64(m.cfg.GCGrace)}); err != nil {
			m.log.Warn("collecting unreferenced blobs", "err", err)
		}
	}
}

// repair has nodes along blob b's ring pull a copy from its live replicas
// until r live replicas exist (or no candidate is left).
func (m *codeManager) repair(ctx context.Context, ring *placement.Ring, b *fsmpb.Blob, live []string, r int) {
	if len(live) == 0 {
		m.log.Error("no live node holds a copy of a code package; it returns when one of its replicas does", "blob", b.Id, "replicas", b.Replicas)
		return
	}
	key := b.PlacementKey
	if key == "" {
		key = b.Id
	}
	for _, target := range ring.Preferred(key, ring.Len(), m.live) {
		if len(live) >= r || ctx.Err() != nil {
			return
		}
		if slices.Contains(live, target) {
			continue
		}
		var err error
		if target == m.self {
			_, err = m.ensure(ctx, b.Id, true, live)
		} else {
			err = m.pull(ctx, target, b.Id, live)
		}
		if err != nil {
			m.log.Warn("repair: a node could not take a copy", "blob", b.Id, "target", target, "err", err)
			continue
		}
		if m.updateReplicas(ctx, b.Id, []string{target}, nil) {
			live = append(live, target)
			m.counters.repairs.Add(1)
			m.log.Info("repair: restored a copy of a code package", "blob", b.Id, "target", target, "live_replicas", len(live))
		}
	}
}

// adopt records blobs that functions reference but no record names, with
// the live nodes that hold a complete copy.
func (m *codeManager) adopt(ctx context.Context, v *fsm.View) {
	type ref struct {
		size int64
		key  string
	}
	missing := map[string]ref{}
	for _, fn := range v.AllFunctions() {
		configs := []*fsmpb.FunctionConfig{fn.Config}
		for _, ver := range v.Versions(fn.AccountId, fn.Name) {
			configs = append(configs, ver.Config)
		}
		for _, cfg := range configs {
			if id := cfg.GetBlobId(); blob.ValidID(id) && v.Blob(id) == nil {
				missing[id] = ref{size: cfg.CodeSize, key: codePlacementKey(fn.AccountId, fn.Name)}
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	ids := make([]string, 0, len(missing))
	for id := range missing {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	holders := map[string][]string{}
	for _, n := range v.Nodes() {
		if !m.live(n.Id) {
			continue
		}
		var has map[string]bool
		if n.Id == m.self {
			has = map[string]bool{}
			for _, id := range ids {
				has[id] = m.store.HasZip(id)
			}
		} else {
			var err error
			if has, err = m.stat(ctx, n.Id, ids); err != nil {
				continue
			}
		}
		for _, id := range ids {
			if has[id] {
				holders[id] = append(holders[id], n.Id)
			}
		}
	}
	for _, id := range ids {
		if len(holders[id]) == 0 {
			m.log.Error("a function references a code package no live node holds", "blob", id)
			continue
		}
		_, err := m.meta.Apply(ctx, &fsmpb.PutBlobCmd{Header: &fsmpb.Header{}, Blob: &fsmpb.Blob{
			Id: id, ZipSize: missing[id].size, Replicas: holders[id], PlacementKey: missing[id].key}})
		if err != nil {
			m.log.Warn("recording an unrecorded code package", "blob", id, "err", err)
		}
	}
}

// updateReplicas commits a replica change and reports whether it did.
func (m *codeManager) updateReplicas(ctx context.Context, id string, add, remove []string) bool {
	_, err := m.meta.Apply(ctx, &fsmpb.UpdateBlobReplicasCmd{Header: &fsmpb.Header{}, BlobId: id, Add: add, Remove: remove})
	if err != nil && !fsm.IsNotFound(err) {
		m.log.Warn("updating the replicas of a code package", "blob", id, "add", add, "remove", remove, "err", err)
	}
	return err == nil
}
