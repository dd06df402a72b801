package fsm

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Store is the in-memory state index every replica reads from. Only the FSM
// writes to it; any number of goroutines may read concurrently. A Restore
// swaps in a whole new database, so a View taken before it keeps seeing the
// old state, consistently.
type Store struct {
	db atomic.Pointer[memdb.MemDB]

	// mu serialises commits, restores and captures, so that a capture sees
	// a database and the counters that belong to it.
	mu      sync.Mutex
	applied atomic.Uint64 // index of the last command applied
	changed chan struct{} // closed and replaced after every commit

	// lastTime is the newest leader time seen in a command; lastPrune the
	// leader time request records were last pruned at. Both are part of the
	// replicated state (they travel in snapshots) because Apply depends on
	// them. Written only under mu by the apply goroutine.
	lastTime  int64
	lastPrune int64
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{changed: make(chan struct{})}
	s.db.Store(newDB())
	return s
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is static; an error here is a programming error caught
		// by every test that builds a store.
		panic("fsm: invalid schema: " + err.Error())
	}
	return db
}

// AppliedIndex is the Raft index of the last command applied to this replica.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// commit makes an apply visible: the write transaction, the counters and
// the applied index change together, then waiters wake.
func (s *Store) commit(txn *memdb.Txn, index uint64, lastTime, lastPrune int64) {
	s.mu.Lock()
	if txn != nil {
		txn.Commit()
	}
	s.lastTime, s.lastPrune = lastTime, lastPrune
	if index > s.applied.Load() {
		s.applied.Store(index)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// capture returns a read transaction with the counters that belong to it.
func (s *Store) capture() (txn *memdb.Txn, applied uint64, lastTime, lastPrune int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Load().Txn(false), s.applied.Load(), s.lastTime, s.lastPrune
}

// WaitForIndex blocks until the replica has applied index or ctx ends.
func (s *Store) WaitForIndex(ctx context.Context, index uint64) error {
	for {
		s.mu.Lock()
		applied, ch := s.applied.Load(), s.changed
		s.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// View returns a consistent read-only view of the current state. It is cheap
// (no copy) and never blocks writers.
func (s *Store) View() *View { return &View{txn: s.db.Load().Txn(false)} }

// View is a point-in-time read of the store. Returned objects are shared
// with the index: treat them as read-only.
type View struct{ txn *memdb.Txn }

func first[T any](v *View, table string, args ...any) *T {
	raw, err := v.txn.First(table, indexID, args...)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*T)
}

func all[T any](v *View, table, index string, args ...any) []*T {
	it, err := v.txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out
}

// Account returns the account with id, or nil.
func (v *View) Account(id string) *fsmpb.Account { return first[fsmpb.Account](v, tableAccounts, id) }

// Accounts returns every account ordered by id.
func (v *View) Accounts() []*fsmpb.Account { return all[fsmpb.Account](v, tableAccounts, indexID) }

// AccessKey returns the access key with id, or nil.
func (v *View) AccessKey(id string) *fsmpb.AccessKey {
	return first[fsmpb.AccessKey](v, tableAccessKeys, id)
}

// AccessKeys returns the keys of an account, or of all accounts when
// accountID is empty, ordered by key id.
func (v *View) AccessKeys(accountID string) []*fsmpb.AccessKey {
	if accountID == "" {
		return all[fsmpb.AccessKey](v, tableAccessKeys, indexID)
	}
	keys := all[fsmpb.AccessKey](v, tableAccessKeys, indexAccount, accountID)
	sort.Slice(keys, func(i, j int) bool { return keys[i].Id < keys[j].Id })
	return keys
}

// Function returns the function, or nil.
func (v *View) Function(accountID, name string) *fsmpb.Function {
	return first[fsmpb.Function](v, tableFunctions, accountID, name)
}

// Functions returns up to limit functions of an account whose names sort
// after marker (exclusive), in name order. limit <= 0 means no limit.
func (v *View) Functions(accountID, marker string, limit int) []*fsmpb.Function {
	it, err := v.txn.LowerBound(tableFunctions, indexID, accountID, marker)
	if err != nil {
		return nil
	}
	var out []*fsmpb.Function
	for raw := it.Next(); raw != nil; raw = it.Next() {
		fn := raw.(*fsmpb.Function)
		if fn.AccountId != accountID {
			break
		}
		if fn.Name == marker {
			continue
		}
		out = append(out, fn)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// AllFunctions returns every function of every account.
func (v *View) AllFunctions() []*fsmpb.Function {
	return all[fsmpb.Function](v, tableFunctions, indexID)
}

// Version returns a published version, or nil.
func (v *View) Version(accountID, function string, version int64) *fsmpb.Version {
	return first[fsmpb.Version](v, tableVersions, accountID, function, version)
}

// Versions returns the published versions of a function in ascending order.
func (v *View) Versions(accountID, function string) []*fsmpb.Version {
	out := all[fsmpb.Version](v, tableVersions, indexFunction, accountID, function)
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Alias returns an alias, or nil.
func (v *View) Alias(accountID, function, name string) *fsmpb.Alias {
	return first[fsmpb.Alias](v, tableAliases, accountID, function, name)
}

// Aliases returns the aliases of a function ordered by name.
func (v *View) Aliases(accountID, function string) []*fsmpb.Alias {
	out := all[fsmpb.Alias](v, tableAliases, indexFunction, accountID, function)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Node returns a committed node record, or nil.
func (v *View) Node(id string) *fsmpb.Node { return first[fsmpb.Node](v, tableNodes, id) }

// Nodes returns every committed node ordered by id.
func (v *View) Nodes() []*fsmpb.Node { return all[fsmpb.Node](v, tableNodes, indexID) }

// Request returns the record of an applied request id, or nil.
func (v *View) Request(id string) *fsmpb.RequestRecord {
	return first[fsmpb.RequestRecord](v, tableRequests, id)
}

// ReservedConcurrency returns the sum of reserved concurrency over an
// account's functions, skipping the function named except (if any).
func (v *View) ReservedConcurrency(accountID, except string) int64 {
	var sum int64
	it, err := v.txn.Get(tableFunctions, indexAccount, accountID)
	if err != nil {
		return 0
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		fn := raw.(*fsmpb.Function)
		if fn.HasReservedConcurrency && fn.Name != except {
			sum += int64(fn.ReservedConcurrency)
		}
	}
	return sum
}
