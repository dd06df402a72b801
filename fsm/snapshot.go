package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// A snapshot is a stream of typed records, each `[kind byte][uvarint
// length][protobuf]`: one meta record, then every table in tablesInOrder
// order (rows in index order), then an end record. The end record makes a
// truncated stream detectable.
type recordKind uint8

const (
	recMeta recordKind = iota + 1
	recAccount
	recAccessKey
	recFunction
	recVersion
	recAlias
	recNode
	recRequest
	recEnd recordKind = 0xFF

	// Kinds 30-39 belong to placement (issue 6).
	recProvisioned recordKind = 30
	recCeiling     recordKind = 31

	// Asynchronous invocation owns kinds 50-59.
	recEventInvokeConfig recordKind = 50
	recAsyncEvent        recordKind = 51
)

const snapshotFormat = 1

// maxRecordBytes bounds one record so a corrupt length cannot make Restore
// allocate without limit. Entities are small (no code, no payloads).
const maxRecordBytes = 16 << 20

var tableRecords = map[string]recordKind{
	tableAccounts: recAccount, tableAccessKeys: recAccessKey, tableFunctions: recFunction,
	tableVersions: recVersion, tableAliases: recAlias, tableNodes: recNode, tableRequests: recRequest,
	tableEventConfigs: recEventInvokeConfig, tableAsyncEvents: recAsyncEvent,
	tableBlobs:       recBlob,
	tableProvisioned: recProvisioned, tableCeilings: recCeiling,
}

var recordTables = func() map[recordKind]string {
	m := map[recordKind]string{}
	for t, k := range tableRecords {
		m[k] = t
	}
	return m
}()

func newRecord(kind recordKind) proto.Message {
	switch kind {
	case recMeta:
		return &fsmpb.SnapshotMeta{}
	case recAccount:
		return &fsmpb.Account{}
	case recAccessKey:
		return &fsmpb.AccessKey{}
	case recFunction:
		return &fsmpb.Function{}
	case recVersion:
		return &fsmpb.Version{}
	case recAlias:
		return &fsmpb.Alias{}
	case recNode:
		return &fsmpb.Node{}
	case recRequest:
		return &fsmpb.RequestRecord{}
	case recEventInvokeConfig:
		return &fsmpb.EventInvokeConfig{}
	case recAsyncEvent:
		return &fsmpb.AsyncEvent{}
	case recBlob:
		return &fsmpb.Blob{}
	case recProvisioned:
		return &fsmpb.ProvisionedConcurrencyConfig{}
	case recCeiling:
		return &fsmpb.LeaseCeiling{}
	}
	return nil
}

// ErrCorruptSnapshot is returned by Restore for a stream it cannot trust.
var ErrCorruptSnapshot = errors.New("fsm: corrupt snapshot")

// Snapshot is a point-in-time image of the state. Writing it may run
// concurrently with Apply: it reads an immutable memdb transaction.
type Snapshot struct {
	txn  *memdb.Txn
	meta *fsmpb.SnapshotMeta
}

// Snapshot captures the current state. It may be called from any
// goroutine; raft calls it from the apply goroutine.
func (f *FSM) Snapshot() *Snapshot {
	txn, applied, lastTime, lastPrune := f.store.capture()
	return &Snapshot{
		txn: txn,
		meta: &fsmpb.SnapshotMeta{
			Format:            snapshotFormat,
			AppliedIndex:      applied,
			LastTimeUnixNano:  lastTime,
			LastPruneUnixNano: lastPrune,
		},
	}
}

// AppliedIndex is the index of the last entry the snapshot contains.
func (s *Snapshot) AppliedIndex() uint64 { return s.meta.AppliedIndex }

// WriteTo writes the snapshot stream to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriterSize(w, 64<<10)}
	err := s.walk(func(kind recordKind, msg proto.Message) error {
		return writeRecord(cw, kind, msg)
	})
	if err == nil {
		err = writeRecord(cw, recEnd, nil)
	}
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	return cw.n, err
}

// walk visits the meta record and every row in snapshot order.
func (s *Snapshot) walk(visit func(recordKind, proto.Message) error) error {
	if err := visit(recMeta, s.meta); err != nil {
		return err
	}
	for _, table := range tablesInOrder {
		it, err := s.txn.Get(table, indexID)
		if err != nil {
			return fmt.Errorf("fsm: snapshot %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := visit(tableRecords[table], raw.(proto.Message)); err != nil {
				return err
			}
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeRecord(w io.Writer, kind recordKind, msg proto.Message) error {
	var body []byte
	if msg != nil {
		var err error
		body, err = proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil {
			return err
		}
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = byte(kind)
	n := binary.PutUvarint(hdr[1:], uint64(len(body)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// Restore replaces the state with the snapshot read from r. It builds a new
// store from scratch and swaps it in only once the whole stream has been
// read and checked, so a corrupt snapshot leaves the current state alone.
func (f *FSM) Restore(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	db := newDB()
	txn := db.Txn(true)
	defer txn.Abort()
	var meta *fsmpb.SnapshotMeta
	for {
		kindByte, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: missing end record: %v", ErrCorruptSnapshot, err)
		}
		kind := recordKind(kindByte)
		size, err := binary.ReadUvarint(br)
		if err != nil || size > maxRecordBytes {
			return fmt.Errorf("%w: bad record length", ErrCorruptSnapshot)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			return fmt.Errorf("%w: short record: %v", ErrCorruptSnapshot, err)
		}
		if kind == recEnd {
			break
		}
		msg := newRecord(kind)
		if msg == nil {
			return fmt.Errorf("%w: unknown record kind %d", ErrCorruptSnapshot, kindByte)
		}
		if err := proto.Unmarshal(body, msg); err != nil {
			return fmt.Errorf("%w: record kind %d: %v", ErrCorruptSnapshot, kindByte, err)
		}
		if kind == recMeta {
			meta = msg.(*fsmpb.SnapshotMeta)
			if meta.Format != snapshotFormat {
				return fmt.Errorf("%w: format %d, want %d", ErrCorruptSnapshot, meta.Format, snapshotFormat)
			}
			continue
		}
		if meta == nil {
			return fmt.Errorf("%w: rows before meta record", ErrCorruptSnapshot)
		}
		if err := txn.Insert(recordTables[kind], msg); err != nil {
			return fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
		}
	}
	if meta == nil {
		return fmt.Errorf("%w: no meta record", ErrCorruptSnapshot)
	}
	txn.Commit()
	f.store.restore(db, meta)
	return nil
}

func (s *Store) restore(db *memdb.MemDB, meta *fsmpb.SnapshotMeta) {
	s.mu.Lock()
	s.db.Store(db)
	s.lastTime = meta.LastTimeUnixNano
	s.lastPrune = meta.LastPruneUnixNano
	s.applied.Store(meta.AppliedIndex)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Hash returns a digest of the replicated state: equal on two replicas
// exactly when they hold the same entities. The applied index is left out,
// so replicas that reached the same state by different routes (log replay or
// snapshot install) compare equal.
func (f *FSM) Hash() [32]byte {
	s := f.Snapshot()
	s.meta = &fsmpb.SnapshotMeta{Format: snapshotFormat, LastTimeUnixNano: s.meta.LastTimeUnixNano}
	h := sha256.New()
	_ = s.walk(func(kind recordKind, msg proto.Message) error {
		return writeRecord(h, kind, msg)
	})
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
