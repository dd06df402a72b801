package node

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/placement"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// This file keeps the node's view for placement: the ring built from the
// committed node records, liveness from gossip, and load.

// placementKey is a function version's identity on the ring. Aliases and
// $LATEST are resolved before (req.Version is the executed version), so all
// of a version's traffic shares one home whatever qualifier it came with.
func placementKey(req *lambdaapi.InvokeRequest) string {
	return req.AccountID + "/" + req.FunctionName + "/" + req.Version
}

// ringMembers turns the committed node records into ring members weighted
// by their advertised memory in MiB (the capacity sandboxes draw on); a
// record without a size counts as 1 GiB.
func ringMembers(nodes []*fsmpb.Node) []placement.Member {
	out := make([]placement.Member, 0, len(nodes))
	for _, n := range nodes {
		w := n.MemoryMb
		if w <= 0 {
			w = 1024
		}
		out = append(out, placement.Member{ID: n.Id, Weight: uint32(min(w, math.MaxUint32))})
	}
	return out
}

// ringView holds the ring every placement on this node uses. It is
// rebuilt when the committed node records change and swapped atomically;
// readers never lock.
type ringView struct {
	cfg     placement.Config
	ring    atomic.Pointer[placement.Ring]
	members []placement.Member // what ring was built from; owned by refresh
}

func newRingView(cfg placement.Config) *ringView {
	v := &ringView{cfg: cfg}
	v.ring.Store(placement.NewRing(nil, cfg))
	return v
}

// Ring returns the current ring (never nil).
func (v *ringView) Ring() *placement.Ring { return v.ring.Load() }

// refresh rebuilds the ring from view's node records if they changed.
// Only one goroutine calls it (the watch loop, or a test).
func (v *ringView) refresh(view *fsm.View) bool {
	members := ringMembers(view.Nodes())
	if slices.Equal(members, v.members) {
		return false
	}
	next := placement.NewRing(members, v.cfg)
	v.members = members
	if next.Equal(v.ring.Load()) {
		return false
	}
	v.ring.Store(next)
	return true
}

// watch refreshes the ring after every applied Raft entry until ctx ends.
func (v *ringView) watch(ctx context.Context, store *fsm.Store, log *slog.Logger) {
	for {
		idx := store.AppliedIndex()
		if v.refresh(store.View()) {
			log.Info("placement ring rebuilt", "members", len(v.members), "fingerprint", v.Ring().Fingerprint())
		}
		if err := store.WaitForIndex(ctx, idx+1); err != nil {
			return
		}
	}
}

// nodeHealth is this node's judgement of which nodes may take
// invocations: gossip liveness and draining flags, plus nodes that just
// refused a connection.
type nodeHealth struct {
	self       string
	gossip     *cluster.Gossip
	draining   func() bool
	suspectFor time.Duration

	mu      sync.Mutex
	suspect map[string]time.Time // node -> skip until
}

// live reports whether placement may choose id now.
func (h *nodeHealth) live(id string) bool {
	if id == h.self {
		return !h.draining()
	}
	m, ok := h.gossip.Member(id)
	if !ok || !m.Alive() || m.Leaving || m.Load.Draining {
		return false
	}
	h.mu.Lock()
	until, bad := h.suspect[id]
	h.mu.Unlock()
	return !bad || time.Now().After(until)
}

// markUnreachable leaves id out of placement for suspectFor.
func (h *nodeHealth) markUnreachable(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.suspect == nil {
		h.suspect = map[string]time.Time{}
	}
	h.suspect[id] = time.Now().Add(h.suspectFor)
}

// loadTracker counts the invocations this node knows to be running on
// each node: its own exactly, others' from what it forwarded and has not
// seen complete, or their gossiped count if that is higher.
type loadTracker struct {
	self   string
	gossip *cluster.Gossip
	local  func() int // invocations running on this node's pool

	mu        sync.Mutex
	forwarded map[string]int
}

func (t *loadTracker) forward(id string) (done func()) {
	t.mu.Lock()
	if t.forwarded == nil {
		t.forwarded = map[string]int{}
	}
	t.forwarded[id]++
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		if t.forwarded[id]--; t.forwarded[id] <= 0 {
			delete(t.forwarded, id)
		}
		t.mu.Unlock()
	}
}

// snapshot returns the loads of the ring's members, fixed for one
// placement (placement.LoadView must not change during a call).
func (t *loadTracker) snapshot(ring *placement.Ring) placement.LoadMap {
	members := ring.Members()
	loads := make(placement.LoadMap, len(members))
	t.mu.Lock()
	for _, m := range members {
		loads[m.ID] = t.forwarded[m.ID]
	}
	t.mu.Unlock()
	for _, m := range members {
		if m.ID == t.self {
			loads[m.ID] = t.local()
			continue
		}
		if g, ok := t.gossip.Member(m.ID); ok {
			loads[m.ID] = max(loads[m.ID], g.Load.Inflight)
		}
	}
	return loads
}
