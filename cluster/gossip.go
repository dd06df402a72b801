package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipConfig configures the node's gossip membership (hashicorp/memberlist).
type GossipConfig struct {
	// Meta describes this node; Meta.ID is its memberlist name and must be
	// unique in the cluster. Meta.GossipAddr is filled in from the bound
	// or advertised address.
	Meta NodeMeta
	// BindAddr is the host:port memberlist listens on (UDP and TCP). Port 0
	// picks a free port (tests); Addr reports the one chosen.
	BindAddr string
	// AdvertiseAddr is the host:port peers reach this node at; empty means
	// the bound address (which must then not be 0.0.0.0).
	AdvertiseAddr string
	// SecretKey (16, 24 or 32 bytes) encrypts and authenticates every gossip
	// packet; nodes with different keys cannot talk to each other. Nil
	// (plaintext gossip) is for development mode only.
	SecretKey []byte
	// Join lists gossip addresses of existing members. Start keeps trying
	// them every RetryJoinInterval until one answers or the node stops.
	Join              []string
	RetryJoinInterval time.Duration

	// Failure detection (memberlist's own settings; see its Config).
	// Detection of a dead node takes at most about
	// (members × ProbeInterval) + ProbeTimeout + the suspicion timeout, the
	// latter between SuspicionMult×max(1,log10 n)×ProbeInterval and
	// SuspicionMaxTimeoutMult times that.
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	PushPullInterval        time.Duration
	TCPTimeout              time.Duration
	// GossipToTheDeadTime is how long memberlist keeps gossiping to (and
	// remembering) a dead node before it forgets it.
	GossipToTheDeadTime time.Duration

	// LeavePropagateDelay is how long Leave keeps gossiping after the leave
	// message went out, so it reaches every member (memberlist does not
	// acknowledge it) before this node falls silent.
	LeavePropagateDelay time.Duration

	// LoadInterval bounds how often a changed load summary is gossiped
	// (each update is one memberlist alive broadcast).
	LoadInterval time.Duration

	// ReconnectInterval is how often this node tries to reach one member
	// it holds dead (not left). memberlist stops contacting a dead member
	// once GossipToTheDeadTime has passed, so without this the two sides
	// of a healed partition would each go on believing the other dead for
	// good. Each try is a UDP ping (bounded by ProbeTimeout) and, if it is
	// answered, a join (a push-pull sync), as serf's reconnect does.
	ReconnectInterval time.Duration

	// Transport, when set, carries memberlist's packets and streams
	// instead of its own UDP/TCP transport on BindAddr. Tests use one that
	// can cut links (clustertest.CutTransport).
	Transport memberlist.NodeAwareTransport

	Logger *slog.Logger
}

// DefaultGossipConfig returns memberlist's LAN settings.
func DefaultGossipConfig() GossipConfig {
	lan := memberlist.DefaultLANConfig()
	return GossipConfig{
		BindAddr:                "0.0.0.0:7946",
		RetryJoinInterval:       5 * time.Second,
		ProbeInterval:           lan.ProbeInterval,
		ProbeTimeout:            lan.ProbeTimeout,
		SuspicionMult:           lan.SuspicionMult,
		SuspicionMaxTimeoutMult: lan.SuspicionMaxTimeoutMult,
		GossipInterval:          lan.GossipInterval,
		PushPullInterval:        lan.PushPullInterval,
		TCPTimeout:              lan.TCPTimeout,
		GossipToTheDeadTime:     lan.GossipToTheDeadTime,
		LeavePropagateDelay:     time.Second,
		LoadInterval:            2 * time.Second,
		ReconnectInterval:       5 * time.Second,
		Logger:                  slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c *GossipConfig) Validate() error {
	switch {
	case c.Meta.ID == "":
		return errors.New("gossip: Meta.ID is required")
	case c.Logger == nil:
		return errors.New("gossip: Logger is required")
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.GossipInterval <= 0 || c.TCPTimeout <= 0:
		return errors.New("gossip: ProbeInterval, ProbeTimeout, GossipInterval and TCPTimeout must be positive")
	case c.ProbeTimeout >= c.ProbeInterval:
		return fmt.Errorf("gossip: ProbeTimeout %v must be shorter than ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	case c.SuspicionMult < 1 || c.SuspicionMaxTimeoutMult < 1:
		return errors.New("gossip: SuspicionMult and SuspicionMaxTimeoutMult must be at least 1")
	case c.LoadInterval <= 0 || c.RetryJoinInterval <= 0 || c.ReconnectInterval <= 0 || c.LeavePropagateDelay < 0:
		return errors.New("gossip: LoadInterval, RetryJoinInterval and ReconnectInterval must be positive, LeavePropagateDelay not negative")
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("gossip: SecretKey is %d bytes; want 16, 24 or 32", len(c.SecretKey))
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("gossip: BindAddr %q: %w", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("gossip: AdvertiseAddr %q: %w", c.AdvertiseAddr, err)
		}
	}
	return nil
}

// DetectionBound is the longest memberlist should take to declare a
// member of an n-node cluster dead once it stops answering: one full
// probe round, the probe timeout and the maximal suspicion timeout.
func (c GossipConfig) DetectionBound(n int) time.Duration {
	return time.Duration(n)*c.ProbeInterval + c.ProbeTimeout +
		time.Duration(c.SuspicionMaxTimeoutMult)*c.suspicionTimeout(n)
}

// SuspicionMinTimeout is how long a suspect stays suspect when every
// confirmation arrives at once (the fastest memberlist declares death).
func (c GossipConfig) SuspicionMinTimeout(n int) time.Duration { return c.suspicionTimeout(n) }

func (c GossipConfig) suspicionTimeout(n int) time.Duration {
	// memberlist's own formula: SuspicionMult × max(1, log10 n) × ProbeInterval.
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(c.SuspicionMult) * scale * float64(c.ProbeInterval))
}

// Gossip is this node's view of cluster membership.
//
// Memberlist calls the delegates on its own goroutines; they only copy
// what they are given onto a queue. One consumer goroutine turns the queue
// into the member table and hands events to subscribers; nothing of this
// type calls memberlist from inside a delegate.
type Gossip struct {
	cfg GossipConfig
	log *slog.Logger
	ml  *memberlist.Memberlist
	// addr is the advertised gossip address, fixed once memberlist started
	// (LocalNode's fields change under memberlist's lock, so not read later).
	addr string

	metaMu   sync.Mutex
	meta     NodeMeta
	load     LoadSummary
	metaBuf  []byte // encoded meta+load handed to memberlist
	loadSent LoadSummary

	queue *eventQueue

	members atomic.Pointer[map[string]Member] // copy-on-write; readers never lock

	subMu  sync.Mutex
	subs   map[int]chan Event
	nextID int

	loadChanged chan struct{}
	stop        chan struct{}
	wg          sync.WaitGroup
	leaving     atomic.Bool
	stopOnce    sync.Once
}

// NewGossip starts memberlist on cfg.BindAddr and the consumer goroutines,
// and starts joining cfg.Join in the background.
func NewGossip(cfg GossipConfig) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "gossip"),
		queue:       newEventQueue(),
		subs:        map[int]chan Event{},
		loadChanged: make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	empty := map[string]Member{}
	g.members.Store(&empty)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, err
		}
	}
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = cfg.SuspicionMult, cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.PushPullInterval, mc.TCPTimeout = cfg.GossipInterval, cfg.PushPullInterval, cfg.TCPTimeout
	mc.GossipToTheDeadTime = cfg.GossipToTheDeadTime
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), cfg.SecretKey...)
	}
	mc.Logger = NewStdLogger(cfg.Logger.With("component", "memberlist"))
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	d := &delegates{g: g}
	mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d

	g.meta = cfg.Meta
	// The advertised gossip address is known only after binding (port 0);
	// until then the configured one stands in.
	if g.meta.GossipAddr == "" {
		g.meta.GossipAddr = cfg.AdvertiseAddr
	}
	if err := g.encodeLocked(); err != nil {
		return nil, err
	}

	g.wg.Add(1)
	go g.consume()
	ml, err := memberlist.Create(mc)
	if err != nil {
		close(g.stop)
		g.queue.close()
		g.wg.Wait()
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	g.addr = ml.LocalNode().Address()
	if g.meta.GossipAddr == "" || cfg.AdvertiseAddr == "" {
		g.metaMu.Lock()
		g.meta.GossipAddr = g.addr
		_ = g.encodeLocked()
		g.metaMu.Unlock()
		g.signalLoad() // re-announce the meta with the real address
	}
	g.wg.Add(3)
	go g.publishLoad()
	go g.retryJoin(cfg.Join)
	go g.reconnect()
	return g, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: address %q: bad port", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func (g *Gossip) encodeLocked() error {
	b, err := encodeMeta(g.meta, g.load)
	if err != nil {
		return err
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("gossip: node meta is %d bytes, over memberlist's %d (addresses too long?)", len(b), memberlist.MetaMaxSize)
	}
	g.metaBuf = b
	return nil
}

// Addr is the gossip address peers reach this node at.
func (g *Gossip) Addr() string { return g.addr }

// LocalID is this node's id.
func (g *Gossip) LocalID() string { return g.cfg.Meta.ID }

// Config returns the configuration the gossip runs with.
func (g *Gossip) Config() GossipConfig { return g.cfg }

// Join contacts the given gossip addresses and returns how many answered.
// An error means none did.
func (g *Gossip) Join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = errors.New("no address answered")
	}
	return 0, fmt.Errorf("gossip: join %v: %w", addrs, err)
}

func (g *Gossip) retryJoin(addrs []string) {
	defer g.wg.Done()
	if len(addrs) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		n, err := g.Join(addrs)
		if err == nil {
			g.log.Info("joined the cluster", "contacted", n)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			g.log.Warn("cannot join the cluster yet; retrying", "addrs", addrs, "attempt", attempt, "err", err)
		}
		select {
		case <-g.stop:
			return
		case <-time.After(g.cfg.RetryJoinInterval):
		}
	}
}

// SetLoad records this node's load. It is gossiped at most once per
// LoadInterval, and only when it changed: each update rides on one
// memberlist alive broadcast, which every node already processes, and
// push-pull syncs repair any update a node missed.
func (g *Gossip) SetLoad(l LoadSummary) {
	g.metaMu.Lock()
	changed := g.load != l
	g.load = l
	g.metaMu.Unlock()
	if changed {
		g.signalLoad()
	}
}

func (g *Gossip) signalLoad() {
	select {
	case g.loadChanged <- struct{}{}:
	default:
	}
}

// Load returns the load summary this node last set.
func (g *Gossip) Load() LoadSummary {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	return g.load
}

// loadBroadcastWait bounds how long publishLoad waits on a load update's
// broadcast (see there).
const loadBroadcastWait = 100 * time.Millisecond

func (g *Gossip) publishLoad() {
	defer g.wg.Done()
	var last time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-g.loadChanged:
		}
		if wait := g.cfg.LoadInterval - time.Since(last); wait > 0 && !last.IsZero() {
			select {
			case <-g.stop:
				return
			case <-time.After(wait):
			}
		}
		g.metaMu.Lock()
		err := g.encodeLocked()
		g.loadSent = g.load
		g.metaMu.Unlock()
		if err != nil {
			g.log.Error("cannot encode node meta", "err", err)
			continue
		}
		last = time.Now()
		if g.leaving.Load() {
			continue // Leave owns the last updates
		}
		// UpdateNode queues the broadcast, then blocks until it has been
		// retransmitted enough or the wait ends. Nothing here needs that
		// (push-pull syncs repair a missed update), and Shutdown waits for
		// this goroutine: once memberlist has shut down the broadcast never
		// completes, so a long wait held every graceful stop for as long.
		_ = g.ml.UpdateNode(loadBroadcastWait)
	}
}

// reconnect tries, every ReconnectInterval, to reach one member held dead
// (see ReconnectInterval). A member that answers the ping is joined: the
// push-pull sync tells both sides the other is alive (each refutes the
// other's verdict on itself), and gossip carries that to everyone else.
func (g *Gossip) reconnect() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		if g.leaving.Load() {
			continue
		}
		var dead []Member
		for _, m := range *g.members.Load() {
			if m.Status == StatusDead && m.GossipAddr != "" && m.ID != g.cfg.Meta.ID {
				dead = append(dead, m)
			}
		}
		if len(dead) == 0 {
			continue
		}
		m := dead[rand.IntN(len(dead))]
		addr, err := net.ResolveUDPAddr("udp", m.GossipAddr)
		if err != nil {
			continue
		}
		if _, err := g.ml.Ping(m.ID, addr); err != nil {
			continue // still unreachable
		}
		if _, err := g.ml.Join([]string{m.GossipAddr}); err != nil {
			g.log.Debug("member held dead answers pings but not a join", "member", m.ID, "err", err)
			continue
		}
		g.log.Info("reconnected to a member held dead", "member", m.ID, "addr", m.GossipAddr)
	}
}

// Members returns every member this node knows of, dead and left ones
// included until they are forgotten, ordered by id.
func (g *Gossip) Members() []Member {
	m := *g.members.Load()
	out := make([]Member, 0, len(m))
	for _, mem := range m {
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns one member by id.
func (g *Gossip) Member(id string) (Member, bool) {
	mem, ok := (*g.members.Load())[id]
	return mem, ok
}

// IsAlive reports whether id is alive or suspect. It is one map lookup on
// an immutable snapshot, cheap enough for every invocation.
func (g *Gossip) IsAlive(id string) bool {
	mem, ok := (*g.members.Load())[id]
	return ok && mem.Alive()
}

// Subscribe returns a channel of membership events and a function that
// ends the subscription. Events are never blocked on: when the buffer of
// size buf is full, events are dropped for that subscriber, so a subscriber
// that must not miss a change re-reads Members() after every event (or
// periodically).
func (g *Gossip) Subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, max(buf, 1))
	g.subMu.Lock()
	id := g.nextID
	g.nextID++
	g.subs[id] = ch
	g.subMu.Unlock()
	return ch, func() {
		g.subMu.Lock()
		delete(g.subs, id)
		g.subMu.Unlock()
	}
}

// Forget drops a dead or left member from the table (after the leader
// reaped it); alive members are kept. It reports whether id was dropped.
func (g *Gossip) Forget(id string) bool {
	done := make(chan bool, 1)
	g.queue.push(rawEvent{forget: true, name: id, done: done})
	select {
	case ok := <-done:
		return ok
	case <-g.stop:
		return false
	}
}

// NumAlive is the number of alive or suspect members, this node included.
func (g *Gossip) NumAlive() int {
	n := 0
	for _, m := range *g.members.Load() {
		if m.Alive() {
			n++
		}
	}
	return n
}

// AnnounceLeaving gossips this node's leaving flag and waits
// LeavePropagateDelay for it to spread: from then on the leader's
// reconcile loop does not add the node back, and peers record the silence
// that follows as a leave, not a failure. timeout bounds the broadcast.
func (g *Gossip) AnnounceLeaving(timeout time.Duration) error {
	if g.leaving.Swap(true) {
		return nil
	}
	g.metaMu.Lock()
	g.meta.Leaving = true
	err := g.encodeLocked()
	g.metaMu.Unlock()
	if err == nil {
		err = g.ml.UpdateNode(timeout)
	}
	if err != nil {
		return fmt.Errorf("gossip: announce leaving: %w", err)
	}
	if g.ml.NumMembers() > 1 {
		g.sleep(g.cfg.LeavePropagateDelay)
	}
	return nil
}

// Leave announces a graceful departure (AnnounceLeaving, if not done yet,
// then memberlist's leave message, waiting LeavePropagateDelay so it
// reaches every member) and stops gossiping. Peers see this node as left,
// not dead. timeout bounds each broadcast.
func (g *Gossip) Leave(timeout time.Duration) error {
	err := g.AnnounceLeaving(timeout)
	others := g.ml.NumMembers() > 1
	if err == nil {
		err = g.ml.Leave(timeout)
	}
	if err == nil && others {
		g.sleep(g.cfg.LeavePropagateDelay)
	}
	if serr := g.Shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

func (g *Gossip) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-g.stop:
	}
}

// Shutdown stops gossiping without saying goodbye: peers will declare this
// node dead. Safe to call more than once.
func (g *Gossip) Shutdown() error {
	var err error
	g.stopOnce.Do(func() {
		err = g.ml.Shutdown()
		close(g.stop)
		g.queue.close()
		g.wg.Wait()
	})
	return err
}

// consume is the one goroutine that owns the member table.
func (g *Gossip) consume() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.queue.ready:
			for _, ev := range g.queue.drain() {
				g.apply(ev)
			}
		}
	}
}

func copyMembers(m map[string]Member) map[string]Member {
	out := make(map[string]Member, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (g *Gossip) apply(ev rawEvent) {
	cur := *g.members.Load()
	if ev.forget {
		mem, ok := cur[ev.name]
		dropped := ok && !mem.Alive()
		if dropped {
			next := copyMembers(cur)
			delete(next, ev.name)
			g.members.Store(&next)
			g.publish(Event{Kind: EventForget, Member: mem})
		}
		ev.done <- dropped
		return
	}
	prev, known := cur[ev.name]
	mem := prev
	if meta, load, err := decodeMeta(ev.meta); err == nil {
		mem.NodeMeta, mem.Load = meta, load
	} else if !known {
		mem.ID = ev.name
	}
	if mem.GossipAddr == "" {
		mem.GossipAddr = ev.addr
	}
	var kind EventKind
	switch {
	case ev.kind == rawLeave && mem.Leaving:
		// memberlist's Node.State does not tell a leave from a death
		// (v0.7.0 never updates it), so the leaving flag the node gossiped
		// just before it went silent does.
		mem.Status, kind = StatusLeft, EventLeave
	case ev.kind == rawLeave:
		mem.Status, kind = StatusDead, EventFail
	case ev.kind == rawJoin || !known || !prev.Alive():
		mem.Status, kind = StatusAlive, EventJoin
	default:
		kind = EventUpdate
	}
	if !known || mem.Status != prev.Status {
		mem.Since = time.Now()
	}
	next := copyMembers(cur)
	next[ev.name] = mem
	g.members.Store(&next)
	if kind != EventUpdate {
		g.log.Info("member "+kind.String(), "member", mem.ID, "role", mem.Role, "addr", mem.GossipAddr, "status", mem.Status)
	}
	g.publish(Event{Kind: kind, Member: mem})
}

func (g *Gossip) publish(ev Event) {
	g.subMu.Lock()
	defer g.subMu.Unlock()
	for _, ch := range g.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// rawEvent is what a delegate copies out of memberlist.
type rawEvent struct {
	kind rawKind
	name string
	addr string
	meta []byte

	forget bool
	done   chan bool
}

type rawKind uint8

const (
	rawJoin rawKind = iota
	rawUpdate
	rawLeave
)

// eventQueue is an unbounded FIFO: delegates must never block memberlist.
type eventQueue struct {
	mu     sync.Mutex
	items  []rawEvent
	closed bool
	ready  chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) push(ev rawEvent) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, ev)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []rawEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// delegates implements memberlist's Delegate, EventDelegate, AliveDelegate
// and ConflictDelegate. Every method only reads local state or copies.
type delegates struct{ g *Gossip }

func copyNode(kind rawKind, n *memberlist.Node) rawEvent {
	return rawEvent{kind: kind, name: n.Name, addr: n.Address(), meta: append([]byte(nil), n.Meta...)}
}

func (d *delegates) NotifyJoin(n *memberlist.Node)   { d.g.queue.push(copyNode(rawJoin, n)) }
func (d *delegates) NotifyLeave(n *memberlist.Node)  { d.g.queue.push(copyNode(rawLeave, n)) }
func (d *delegates) NotifyUpdate(n *memberlist.Node) { d.g.queue.push(copyNode(rawUpdate, n)) }

// NotifyAlive refuses peers whose meta is not a Stoke node's, so a foreign
// memberlist that happens to share the key cannot join.
func (d *delegates) NotifyAlive(n *memberlist.Node) error {
	meta, _, err := decodeMeta(n.Meta)
	if err != nil {
		return err
	}
	if meta.ID != n.Name {
		return fmt.Errorf("cluster: node %q gossips meta for %q", n.Name, meta.ID)
	}
	return nil
}

func (d *delegates) NotifyConflict(existing, other *memberlist.Node) {
	d.g.log.Error("two nodes claim the same node id; give each node its own data dir",
		"node", existing.Name, "existing", existing.Address(), "other", other.Address())
}

func (d *delegates) NodeMeta(limit int) []byte {
	d.g.metaMu.Lock()
	defer d.g.metaMu.Unlock()
	if len(d.g.metaBuf) > limit {
		return nil
	}
	return append([]byte(nil), d.g.metaBuf...)
}

func (d *delegates) NotifyMsg([]byte)                {}
func (d *delegates) GetBroadcasts(int, int) [][]byte { return nil }
func (d *delegates) LocalState(bool) []byte          { return nil }
func (d *delegates) MergeRemoteState([]byte, bool)   {}
