package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Result is what applying one log entry produced. Err is an *Error for a
// refused command (deterministic on every replica) or ErrMalformedCommand;
// Value holds the entities the command created or changed.
type Result struct {
	Index uint64
	Value *fsmpb.ApplyResult
	Err   error
}

// Request records are kept this long (leader time) so a proposer that
// retries a command after a leader change gets the first outcome back
// instead of applying the command twice; pruning runs at most this often.
const (
	requestRetention = 15 * time.Minute
	requestPruneStep = time.Minute
)

// FSM applies log entries to a Store.
//
// Apply, Snapshot and Restore must not be called concurrently with each
// other (hashicorp/raft guarantees this: they run on its FSM goroutine);
// reads through Store.View may run at any time.
type FSM struct {
	store *Store
}

// New returns an FSM over an empty store.
func New() *FSM { return &FSM{store: NewStore()} }

// Store returns the state index the FSM writes to.
func (f *FSM) Store() *Store { return f.store }

// Apply applies one log entry at index. It panics only for an unknown
// command type without IgnorableFlag: such an entry can only come from a newer
// binary, and skipping it would silently fork this replica's state.
// Proposers are protected from that path by Validate, which every entry
// passes before it is appended.
func (f *FSM) Apply(index uint64, data []byte) Result {
	st := f.store
	lastTime, lastPrune := st.lastTime, st.lastPrune
	t, cmd, err := Decode(data)
	switch {
	case err == nil:
	case len(data) > 0 && !t.Known() && !t.Ignorable():
		panic(fmt.Sprintf("fsm: entry %d has unknown command type %d; this binary is too old for the log", index, data[0]))
	default:
		// Malformed, or unknown but ignorable: refused the same way everywhere.
		st.commit(nil, index, lastTime, lastPrune)
		return Result{Index: index, Err: err}
	}

	h := cmd.GetHeader()
	lastTime = max(lastTime, h.TimeUnixNano)
	txn := st.db.Load().Txn(true)
	defer txn.Abort()
	if h.RequestId != "" {
		if rec, _ := txn.First(tableRequests, indexID, h.RequestId); rec != nil {
			st.commit(nil, index, lastTime, lastPrune)
			return recordedResult(index, rec.(*fsmpb.RequestRecord))
		}
	}

	a := &applier{txn: txn, index: index, header: h}
	value, applyErr := a.apply(t, cmd)
	if applyErr != nil {
		// A refused command changes nothing but its request record.
		txn.Abort()
		txn = st.db.Load().Txn(true)
		a.txn = txn
		value = nil
	}
	if h.RequestId != "" {
		if err := a.recordRequest(t, value, applyErr); err != nil {
			st.commit(nil, index, lastTime, lastPrune)
			return Result{Index: index, Err: err}
		}
	}
	if lastTime-lastPrune >= int64(requestPruneStep) {
		lastPrune = lastTime
		pruneRequests(txn, lastTime-int64(requestRetention))
	}
	st.commit(txn, index, lastTime, lastPrune)
	return Result{Index: index, Value: value, Err: applyErr}
}

func recordedResult(index uint64, rec *fsmpb.RequestRecord) Result {
	res := Result{Index: index}
	if rec.ErrorCode != 0 {
		res.Err = &Error{Code: Code(rec.ErrorCode), Message: rec.ErrorMessage}
		return res
	}
	if len(rec.Result) > 0 {
		res.Value = &fsmpb.ApplyResult{}
		if err := proto.Unmarshal(rec.Result, res.Value); err != nil {
			res.Value, res.Err = nil, fmt.Errorf("%w: request record %s: %v", ErrMalformedCommand, rec.RequestId, err)
		}
	}
	return res
}

// pruneRequests drops request records stamped before cutoff. It depends
// only on replicated state, so every replica prunes the same records at the
// same index.
func pruneRequests(txn *memdb.Txn, cutoff int64) {
	it, err := txn.Get(tableRequests, indexID)
	if err != nil {
		return
	}
	var stale []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if raw.(*fsmpb.RequestRecord).TimeUnixNano < cutoff {
			stale = append(stale, raw)
		}
	}
	for _, raw := range stale {
		_ = txn.Delete(tableRequests, raw)
	}
}

// applier carries one entry's write transaction and context.
type applier struct {
	txn    *memdb.Txn
	index  uint64
	header *fsmpb.Header
	nextID int
}

func (a *applier) now() int64 { return a.header.TimeUnixNano }

// newRevisionID derives a UUID-shaped revision id from the entry (index,
// leader time, request id) and a per-entry counter, so every replica
// assigns the same id without randomness, and ids differ across clusters.
func (a *applier) newRevisionID() string {
	var buf [24]byte
	binary.BigEndian.PutUint64(buf[:8], a.index)
	binary.BigEndian.PutUint64(buf[8:16], uint64(a.nextID))
	binary.BigEndian.PutUint64(buf[16:], uint64(a.header.TimeUnixNano))
	a.nextID++
	sum := sha256.Sum256(append(append([]byte("stoke-revision:"), buf[:]...), a.header.RequestId...))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (a *applier) insert(table string, obj any) error {
	if err := a.txn.Insert(table, obj); err != nil {
		return errorf(CodeInvalid, "%s: %v", table, err)
	}
	return nil
}

func (a *applier) recordRequest(t CommandType, value *fsmpb.ApplyResult, applyErr error) error {
	rec := &fsmpb.RequestRecord{
		RequestId:    a.header.RequestId,
		Index:        a.index,
		TimeUnixNano: a.now(),
		ResultType:   uint32(t),
	}
	if applyErr != nil {
		rec.ErrorCode = int32(CodeOf(applyErr))
		rec.ErrorMessage = applyErr.Error()
		var e *Error
		if errors.As(applyErr, &e) {
			rec.ErrorMessage = e.Message
		}
	}
	if value != nil {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(value)
		if err != nil {
			return err
		}
		rec.Result = b
	}
	return a.insert(tableRequests, rec)
}

func (a *applier) apply(t CommandType, cmd Command) (*fsmpb.ApplyResult, error) {
	switch c := cmd.(type) {
	case *fsmpb.CreateAccountCmd:
		return a.createAccount(c)
	case *fsmpb.UpdateAccountCmd:
		return a.updateAccount(c)
	case *fsmpb.CreateAccessKeyCmd:
		return a.createAccessKey(c)
	case *fsmpb.SetAccessKeyStatusCmd:
		return a.setAccessKeyStatus(c)
	case *fsmpb.CreateFunctionCmd:
		return a.createFunction(c)
	case *fsmpb.UpdateFunctionCodeCmd:
		return a.updateFunctionCode(c)
	case *fsmpb.UpdateFunctionConfigCmd:
		return a.updateFunctionConfig(c)
	case *fsmpb.DeleteFunctionCmd:
		return a.deleteFunction(c)
	case *fsmpb.PublishVersionCmd:
		return a.publishVersion(c)
	case *fsmpb.CreateAliasCmd:
		return a.createAlias(c)
	case *fsmpb.UpdateAliasCmd:
		return a.updateAlias(c)
	case *fsmpb.DeleteAliasCmd:
		return a.deleteAlias(c)
	case *fsmpb.PutFunctionConcurrencyCmd:
		return a.putFunctionConcurrency(c)
	case *fsmpb.DeleteFunctionConcurrencyCmd:
		return a.deleteFunctionConcurrency(c)
	case *fsmpb.TagResourceCmd:
		return a.tagResource(c)
	case *fsmpb.UntagResourceCmd:
		return a.untagResource(c)
	case *fsmpb.UpsertNodeCmd:
		return a.upsertNode(c)
	case *fsmpb.RemoveNodeCmd:
		return a.removeNode(c)
	case *fsmpb.PutProvisionedConcurrencyCmd:
		return a.putProvisionedConcurrency(c)
	case *fsmpb.DeleteProvisionedConcurrencyCmd:
		return a.deleteProvisionedConcurrency(c)
	case *fsmpb.SetProvisionedConcurrencyStatusCmd:
		return a.setProvisionedConcurrencyStatus(c)
	case *fsmpb.SetLeaseCeilingCmd:
		return a.setLeaseCeiling(c)
	case *fsmpb.PutBlobCmd:
		return a.putBlob(c)
	case *fsmpb.UpdateBlobReplicasCmd:
		return a.updateBlobReplicas(c)
	case *fsmpb.CollectBlobsCmd:
		return a.collectBlobs(c)
	case *fsmpb.PutEventInvokeConfigCmd:
		return nil, a.putEventInvokeConfig(c)
	case *fsmpb.DeleteEventInvokeConfigCmd:
		return nil, a.deleteEventInvokeConfig(c)
	case *fsmpb.AsyncEnqueueCmd:
		return nil, a.asyncEnqueue(c)
	case *fsmpb.AsyncUpdateCmd:
		return nil, a.asyncUpdate(c)
	case *fsmpb.AsyncRedriveCmd:
		return nil, a.asyncRedrive(c)
	case *fsmpb.AsyncPurgeCmd:
		return nil, a.asyncPurge(c)
	}
	// Every registered type has a case above; a test walks the registry.
	return nil, errorf(CodeInvalid, "no handler for %s", t)
}
