package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/stokehq/stoke/fsm"
)

// RecoverConfig says how to rewrite a stopped server's Raft configuration
// after a permanent loss of quorum.
type RecoverConfig struct {
	// NodeID is the local node, the one whose data dir is rewritten; it
	// must be among Servers.
	NodeID string
	// DataDir is the node's data dir (Raft state in DataDir/raft).
	DataDir string
	// Servers is the new configuration: every server that will vote once
	// the cluster runs again (the survivors), with its Raft address.
	Servers []Server
	// SnapshotsRetained is how many snapshots stay on disk (the agent's
	// setting, so recovery does not prune what the agent would keep).
	SnapshotsRetained int
	Logger            *slog.Logger
}

// DefaultRecoverConfig returns the agent's snapshot retention and the
// default logger; NodeID, DataDir and Servers are the caller's.
func DefaultRecoverConfig() RecoverConfig {
	d := DefaultRaftConfig()
	return RecoverConfig{SnapshotsRetained: d.SnapshotsRetained, Logger: d.Logger}
}

// Validate reports the first reason the new configuration is unsafe or
// cannot work: no servers, a malformed or repeated id or address, or a
// list without the local node (which could then never elect itself).
func (c *RecoverConfig) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("recover: the local node id is required")
	case c.DataDir == "":
		return errors.New("recover: the data dir is required")
	case len(c.Servers) == 0:
		return errors.New("recover: the new configuration is empty; name at least this node (--server ID=RAFT_ADDR)")
	case c.SnapshotsRetained < 1 || c.Logger == nil:
		return errors.New("recover: SnapshotsRetained must be at least 1 and Logger is required")
	}
	ids, addrs := map[string]bool{}, map[string]string{}
	self := false
	for _, s := range c.Servers {
		if s.ID == "" || strings.ContainsAny(s.ID, "= \t") {
			return fmt.Errorf("recover: bad server id %q", s.ID)
		}
		if host, port, err := net.SplitHostPort(s.Address); err != nil || host == "" || port == "" || port == "0" {
			return fmt.Errorf("recover: server %s: Raft address %q is not host:port", s.ID, s.Address)
		}
		if ids[s.ID] {
			return fmt.Errorf("recover: server %s is listed twice", s.ID)
		}
		if other, dup := addrs[s.Address]; dup {
			return fmt.Errorf("recover: servers %s and %s share the address %s", other, s.ID, s.Address)
		}
		if !s.Voter {
			return fmt.Errorf("recover: server %s must be a voter", s.ID)
		}
		ids[s.ID], addrs[s.Address] = true, s.ID
		self = self || s.ID == c.NodeID
	}
	if !self {
		return fmt.Errorf("recover: this node (%s) is not in the new configuration; list it with --server %s=RAFT_ADDR", c.NodeID, c.NodeID)
	}
	return nil
}

// RecoverResult describes the state a recovery kept.
type RecoverResult struct {
	// LastIndex and LastTerm are the last log entry the node held: every
	// entry up to it, committed or not, is now part of the recovered state.
	LastIndex uint64
	LastTerm  uint64
	// Previous is the configuration the node held before, for the
	// operator to compare with the new one.
	Previous []Server
}

// Recover rewrites the Raft configuration of a stopped node to exactly
// cfg.Servers, with hashicorp/raft's RecoverCluster: the node's snapshot and
// log are replayed into a fresh FSM, a snapshot carrying the new
// configuration is written, and the log is compacted. Started again, the
// node trusts only that configuration, so a lone survivor elects itself.
//
// It refuses, changing nothing, when the configuration fails Validate,
// when the data dir holds no Raft state (ErrNoState), or when another
// process holds the state open (ErrStateLocked: the agent is running).
//
// Recovery is for permanent loss of quorum only. Entries the node holds
// that were never committed become committed, and entries the cluster
// committed without this node are lost: recover the most up-to-date
// survivor (the highest LastIndex).
func Recover(cfg RecoverConfig) (RecoverResult, error) {
	if err := cfg.Validate(); err != nil {
		return RecoverResult{}, err
	}
	db := filepath.Join(raftDir(cfg.DataDir), "raft.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		return RecoverResult{}, fmt.Errorf("recover: %s does not exist: %w", db, ErrNoState)
	} else if err != nil {
		return RecoverResult{}, fmt.Errorf("recover: %w", err)
	}
	hlog := NewHCLogger(cfg.Logger, "raft")
	logStore, snaps, err := openStores(cfg.DataDir, cfg.SnapshotsRetained, hlog)
	if err != nil {
		return RecoverResult{}, fmt.Errorf("recover: %w", err)
	}
	defer logStore.Close()
	has, err := raft.HasExistingState(logStore, logStore, snaps)
	if err != nil {
		return RecoverResult{}, fmt.Errorf("recover: inspect state: %w", err)
	}
	if !has {
		return RecoverResult{}, fmt.Errorf("recover: %s: %w", raftDir(cfg.DataDir), ErrNoState)
	}

	previous, err := latestConfiguration(logStore, snaps)
	if err != nil {
		return RecoverResult{}, fmt.Errorf("recover: read the current configuration: %w", err)
	}

	rcfg := DefaultRaftConfig()
	rcfg.NodeID, rcfg.DataDir, rcfg.Logger = cfg.NodeID, cfg.DataDir, cfg.Logger
	conf := raft.Configuration{}
	for _, s := range cfg.Servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: raft.Voter})
	}
	// RecoverCluster passes the transport only to the snapshot store, which
	// ignores it: no socket is opened.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	if err := raft.RecoverCluster(raftConfig(rcfg, hlog), &raftFSM{f: fsm.New()}, logStore, logStore, snaps, trans, conf); err != nil {
		return RecoverResult{}, fmt.Errorf("recover: %w", err)
	}
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return RecoverResult{}, fmt.Errorf("recover: the recovery snapshot cannot be listed: %v", err)
	}
	res := RecoverResult{LastIndex: metas[0].Index, LastTerm: metas[0].Term}
	for _, srv := range previous.Servers {
		res.Previous = append(res.Previous, Server{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return res, nil
}

// latestConfiguration is the last configuration in the log, or the
// newest snapshot's when the log holds none after it (what raft itself
// would load at start).
func latestConfiguration(logs raft.LogStore, snaps raft.SnapshotStore) (conf raft.Configuration, err error) {
	var snapIndex uint64
	metas, err := snaps.List()
	if err != nil {
		return conf, err
	}
	if len(metas) > 0 {
		conf, snapIndex = metas[0].Configuration, metas[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return conf, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return conf, err
	}
	defer func() {
		// DecodeConfiguration panics on a corrupt entry.
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	for i := last; i > snapIndex && i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return conf, fmt.Errorf("log entry %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			return raft.DecodeConfiguration(l.Data), nil
		}
	}
	return conf, nil
}
