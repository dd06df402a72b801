package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// RaftConfig configures the local Raft node.
type RaftConfig struct {
	// NodeID is this node's stable identity (it survives restarts).
	NodeID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// BindAddr is the host:port the Raft transport listens on. Port 0 picks
	// a free port (tests); Addr reports the one chosen.
	BindAddr string
	// AdvertiseAddr is the address peers dial; empty means the bound address.
	AdvertiseAddr string
	// Bootstrap makes a node without existing Raft state form a cluster of
	// the servers in BootstrapServers (just itself when empty).
	Bootstrap        bool
	BootstrapServers []raft.Server
	// StreamLayer, when set, carries Raft traffic instead of plain TCP on
	// BindAddr (for example TLS); BindAddr is then ignored.
	StreamLayer raft.StreamLayer

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one; SnapshotInterval how often that is checked.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries are kept after a snapshot so slow
	// followers catch up from the log instead of a snapshot install.
	TrailingLogs uint64
	// SnapshotsRetained is how many snapshots stay on disk.
	SnapshotsRetained int
	// Now is the clock the leader stamps commands with (a seam for tests
	// and clock-offset faults).
	Now func() time.Time
	// OnLeadership, if set, is called with true once this node is leader
	// and its FSM has applied every earlier entry, and with false when it
	// stops being leader. Calls come from one goroutine, in order.
	OnLeadership func(isLeader bool)

	Logger *slog.Logger
}

// DefaultRaftConfig returns settings for a production cluster on a LAN.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       10240,
		SnapshotsRetained:  2,
		Now:                time.Now,
		Logger:             slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c *RaftConfig) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("raft: NodeID is required")
	case c.DataDir == "":
		return errors.New("raft: DataDir is required")
	case c.StreamLayer == nil && c.BindAddr == "":
		return errors.New("raft: BindAddr is required without a StreamLayer")
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0:
		return errors.New("raft: HeartbeatTimeout and ElectionTimeout must be positive")
	case c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("raft: LeaderLeaseTimeout %v must be positive and at most HeartbeatTimeout %v",
			c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.Now == nil || c.Logger == nil:
		return errors.New("raft: Now and Logger are required")
	case c.SnapshotsRetained < 1:
		return errors.New("raft: SnapshotsRetained must be at least 1")
	}
	return nil
}

// Raft is the local Raft node with the state machine it drives.
type Raft struct {
	cfg       RaftConfig
	raft      *raft.Raft
	fsm       *fsm.FSM
	logStore  *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	log       *slog.Logger
	// hadState is whether the data dir held Raft state at start.
	hadState bool

	// ready is true while this node is leader and has applied every entry
	// of earlier terms; linearizable reads on the leader wait for it.
	ready    atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
}

// NewRaft opens (or creates) the Raft state in cfg.DataDir and starts the
// node. The FSM must be fresh; Raft replays snapshots and log into it.
func NewRaft(cfg RaftConfig, f *fsm.FSM) (*Raft, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(raftDir(cfg.DataDir), 0o700); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	hlog := NewHCLogger(cfg.Logger, "raft")
	logStore, snaps, err := openStores(cfg.DataDir, cfg.SnapshotsRetained, hlog)
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(cfg, hlog)
	if err != nil {
		logStore.Close()
		return nil, err
	}
	rc := raftConfig(cfg, hlog)

	existing, err := raft.HasExistingState(logStore, logStore, snaps)
	if err != nil {
		transport.Close()
		logStore.Close()
		return nil, fmt.Errorf("raft: inspect state: %w", err)
	}
	if cfg.Bootstrap {
		if !existing {
			servers := cfg.BootstrapServers
			if len(servers) == 0 {
				servers = []raft.Server{{ID: rc.LocalID, Address: transport.LocalAddr()}}
			}
			if err := raft.BootstrapCluster(rc, logStore, logStore, snaps, transport,
				raft.Configuration{Servers: servers}); err != nil {
				transport.Close()
				logStore.Close()
				return nil, fmt.Errorf("raft: bootstrap: %w", err)
			}
		}
	}

	r := &Raft{cfg: cfg, fsm: f, logStore: logStore, transport: transport, hadState: existing,
		log: cfg.Logger.With("component", "raft"), stop: make(chan struct{})}
	ra, err := raft.NewRaft(rc, &raftFSM{f: f}, logStore, logStore, snaps, transport)
	if err != nil {
		transport.Close()
		logStore.Close()
		return nil, fmt.Errorf("raft: start: %w", err)
	}
	r.raft = ra
	r.wg.Add(1)
	go r.watchLeadership()
	return r, nil
}

// storeLockTimeout is how long opening raft.db waits for the file lock
// another process (a running agent) holds before giving up.
const storeLockTimeout = 2 * time.Second

// raftDir is where a node keeps its Raft state inside its data dir.
func raftDir(dataDir string) string { return filepath.Join(dataDir, "raft") }

// openStores opens the log and stable store (raft.db) and the snapshot
// store of the data dir. raft.db is locked while open: a second opener
// gets ErrStateLocked instead of waiting forever.
func openStores(dataDir string, retained int, hlog hclog.Logger) (*raftboltdb.BoltStore, *raft.FileSnapshotStore, error) {
	dir := raftDir(dataDir)
	bolt := *bbolt.DefaultOptions
	bolt.Timeout = storeLockTimeout
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bolt})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, nil, fmt.Errorf("raft: open %s: %w", filepath.Join(dir, "raft.db"), ErrStateLocked)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("raft: open log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, retained, hlog.Named("snapshots"))
	if err != nil {
		logStore.Close()
		return nil, nil, fmt.Errorf("raft: open snapshot store: %w", err)
	}
	return logStore, snaps, nil
}

// raftConfig is hashicorp/raft's configuration for cfg.
func raftConfig(cfg RaftConfig, hlog hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	return rc
}

func newTransport(cfg RaftConfig, hlog hclog.Logger) (*raft.NetworkTransport, error) {
	const maxPool, timeout = 3, 10 * time.Second
	if cfg.StreamLayer != nil {
		return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: cfg.StreamLayer, MaxPool: maxPool, Timeout: timeout, Logger: hlog.Named("transport"),
		}), nil
	}
	var advertise net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("raft: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		advertise = a
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.BindAddr, advertise, maxPool, timeout, hlog.Named("transport"))
	if err != nil {
		return nil, fmt.Errorf("raft: listen on %s: %w", cfg.BindAddr, err)
	}
	return t, nil
}

// raftFSM adapts fsm.FSM to raft.FSM; it is deliberately thin.
type raftFSM struct{ f *fsm.FSM }

func (a *raftFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return a.f.Apply(l.Index, l.Data)
}

func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) { return &raftSnapshot{s: a.f.Snapshot()}, nil }

func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return a.f.Restore(rc)
}

type raftSnapshot struct{ s *fsm.Snapshot }

func (s *raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *raftSnapshot) Release() {}

// watchLeadership keeps ready in step with leadership. On gaining it, a
// barrier waits until every entry of earlier terms is applied locally, so
// reads served by this leader reflect all acknowledged writes.
func (r *Raft) watchLeadership() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case isLeader := <-r.raft.LeaderCh():
			if !isLeader {
				r.ready.Store(false)
				r.notifyLeadership(false)
				continue
			}
			// A second true means leadership was lost and regained while we
			// were busy: readiness from the earlier term does not carry over.
			r.ready.Store(false)
			if r.establishLeadership() {
				r.ready.Store(true)
				r.notifyLeadership(true)
			}
		}
	}
}

// establishLeadership waits until every entry of earlier terms is applied,
// retrying the barrier while this node stays leader.
func (r *Raft) establishLeadership() bool {
	for r.raft.State() == raft.Leader {
		err := r.raft.Barrier(r.cfg.ElectionTimeout * 5).Error()
		if err == nil {
			return r.raft.State() == raft.Leader
		}
		r.log.Warn("leader barrier failed; retrying", "err", err)
		select {
		case <-r.stop:
			return false
		case <-time.After(r.cfg.HeartbeatTimeout):
		}
	}
	return false
}

func (r *Raft) notifyLeadership(v bool) {
	if r.cfg.OnLeadership != nil {
		r.cfg.OnLeadership(v)
	}
}

// FSM returns the state machine this node applies to.
func (r *Raft) FSM() *fsm.FSM { return r.fsm }

// Store returns the local replica's read index.
func (r *Raft) Store() *fsm.Store { return r.fsm.Store() }

// Addr is the address peers reach this node's Raft transport at.
func (r *Raft) Addr() string { return string(r.transport.LocalAddr()) }

// ID is this node's Raft server id.
func (r *Raft) ID() string { return r.cfg.NodeID }

// IsLeader reports whether this node is the leader right now (without
// confirming it with a quorum).
func (r *Raft) IsLeader() bool { return r.raft.State() == raft.Leader }

// Leader returns the id and address of the leader this node knows of.
func (r *Raft) Leader() (id, addr string) {
	a, i := r.raft.LeaderWithID()
	return string(i), string(a)
}

// State is the local node's Raft state (Follower, Candidate, Leader, Shutdown).
func (r *Raft) State() string { return r.raft.State().String() }

// Apply proposes cmd and waits until it is applied, returning the FSM's
// result. It must run on the leader: elsewhere it returns a *LeaderError.
// The leader stamps the command's header time here. A context that ends
// before the outcome is known yields ErrTimeout; with ErrTimeout and
// ErrLeadershipLost the command may still commit, so callers retry with the
// same request id, which the FSM answers idempotently.
func (r *Raft) Apply(ctx context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	return r.ApplyEntry(ctx, data)
}

// ApplyEntry is Apply for a command already encoded (forwarded from another
// node). The entry is checked with fsm.Validate before it can reach the log.
func (r *Raft) ApplyEntry(ctx context.Context, data []byte) (*fsmpb.ApplyResult, error) {
	if r.raft.State() != raft.Leader {
		return nil, r.translate(raft.ErrNotLeader)
	}
	stamped, err := fsm.Stamp(data, r.cfg.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	enqueue := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		enqueue = time.Until(dl)
		if enqueue <= 0 {
			return nil, ErrTimeout
		}
	}
	future := r.raft.Apply(stamped, enqueue)
	// The waiter lets ctx end the wait. It ends when the future is
	// answered, which raft skips for entries still queued for its FSM
	// when it shuts down: then it stays, holding only the future.
	done := make(chan struct{})
	go func() {
		_ = future.Error()
		close(done)
	}()
	select {
	case <-ctx.Done():
		return nil, ErrTimeout
	case <-done:
	}
	if err := future.Error(); err != nil {
		return nil, r.translate(err)
	}
	res, ok := future.Response().(fsm.Result)
	if !ok {
		return nil, fmt.Errorf("cluster: unexpected FSM response %T", future.Response())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	out := res.Value
	if out == nil {
		out = &fsmpb.ApplyResult{}
	}
	out.Index = future.Index()
	return out, nil
}

// ReadIndex returns an index such that a replica that has applied it
// reflects every write acknowledged before the call (the leader's applied
// index after confirming leadership with a quorum). It must run on the
// leader.
func (r *Raft) ReadIndex(ctx context.Context) (uint64, error) {
	if r.raft.State() != raft.Leader {
		return 0, r.translate(raft.ErrNotLeader)
	}
	if !r.ready.Load() {
		return 0, ErrNoLeader
	}
	idx := r.Store().AppliedIndex()
	if err := waitFuture(ctx, r.raft.VerifyLeader()); err != nil {
		return 0, r.translate(err)
	}
	return idx, nil
}

// LeaderReady reports whether this node is a leader that can serve
// linearizable reads.
func (r *Raft) LeaderReady() bool { return r.ready.Load() && r.IsLeader() }

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case <-ctx.Done():
		return ErrTimeout
	case err := <-done:
		return err
	}
}

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Configuration returns the latest Raft configuration.
func (r *Raft) Configuration() ([]Server, error) {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, r.translate(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds (or promotes) a voting server. Leader only.
func (r *Raft) AddVoter(ctx context.Context, id, addr string) error {
	return r.translate(waitFuture(ctx, r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)))
}

// AddNonvoter adds a server that replicates the log without voting. Leader only.
func (r *Raft) AddNonvoter(ctx context.Context, id, addr string) error {
	return r.translate(waitFuture(ctx, r.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)))
}

// RemoveServer removes a server from the configuration. Leader only.
func (r *Raft) RemoveServer(ctx context.Context, id string) error {
	return r.translate(waitFuture(ctx, r.raft.RemoveServer(raft.ServerID(id), 0, 0)))
}

// HasState reports whether this node has Raft state: it started from a
// data dir that had some, or it has since been bootstrapped or joined.
func (r *Raft) HasState() bool {
	if r.hadState || r.raft.LastIndex() > 0 {
		return true
	}
	f := r.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// BootstrapCluster forms a new cluster of servers (all voters) on a node
// without Raft state. Every server of the initial configuration must call
// it with the same servers. On a node with state it returns
// ErrAlreadyBootstrapped and changes nothing.
func (r *Raft) BootstrapCluster(servers []Server) error {
	cfg := raft.Configuration{}
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: raft.Voter})
	}
	err := r.raft.BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrAlreadyBootstrapped
	}
	return r.translate(err)
}

// LeadershipTransfer hands leadership to another voter and waits for it.
func (r *Raft) LeadershipTransfer(ctx context.Context) error {
	return r.translate(waitFuture(ctx, r.raft.LeadershipTransfer()))
}

// LastContact is when this node last heard from the leader (zero: never).
func (r *Raft) LastContact() time.Time { return r.raft.LastContact() }

// Term is the current Raft term.
func (r *Raft) Term() uint64 { return r.raft.CurrentTerm() }

// CommitIndex is the latest index known committed.
func (r *Raft) CommitIndex() uint64 { return r.raft.CommitIndex() }

// Snapshot takes a snapshot now and compacts the log.
func (r *Raft) Snapshot() error { return r.translate(r.raft.Snapshot().Error()) }

// Stats returns raft's diagnostic counters (last_log_index, commit_index, …).
func (r *Raft) Stats() map[string]string { return r.raft.Stats() }

// LastIndex is the index of the last entry in the local log.
func (r *Raft) LastIndex() uint64 { return r.raft.LastIndex() }

// Shutdown stops the node and closes its stores. It is safe to call twice.
func (r *Raft) Shutdown() error {
	var err error
	r.shutOnce.Do(func() {
		close(r.stop)
		err = r.raft.Shutdown().Error()
		r.wg.Wait()
		if cerr := r.transport.Close(); err == nil {
			err = cerr
		}
		if cerr := r.logStore.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
