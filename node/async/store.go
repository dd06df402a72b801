package async

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// PayloadLog is a node's durable store of event payloads: append-only
// segment files of checksummed records, with an in-memory index from event
// id to record. Appends are group-committed: every Append waiting while a
// write is in progress joins the next one, so a burst costs one write and
// one fsync, not one per event.
//
// Deletion is logical (the index forgets the id); a sealed segment whose
// records are all deleted is removed from disk. Deletions are not logged:
// after a restart every record is indexed again and the owner's sweep,
// which knows from the replicated state which events still exist, deletes
// the stale ones.
//
// All methods are safe for concurrent use.
type PayloadLog struct {
	dir          string
	segmentBytes int64
	log          *slog.Logger

	mu     sync.Mutex
	index  map[string]recordLoc
	segs   map[uint64]*segment
	active *segment
	closed bool

	writes chan *appendReq
	done   chan struct{}
	wg     sync.WaitGroup
}

type recordLoc struct {
	seg     uint64
	off     int64
	size    int32 // body bytes
	written int64 // unix nanos the record was indexed (restart time after a restart)
}

type segment struct {
	seq    uint64
	f      *os.File
	size   int64
	live   int
	sealed bool
}

type appendReq struct {
	recs [][]byte
	ids  []string
	done chan error
}

// Record framing: [uint32 body length][uint32 CRC-32C of body][body], big
// endian; the body is an rpcpb.EventPayload.
const (
	recordHeader  = 8
	maxRecordBody = 16 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrPayloadNotFound is returned by Get for an id the log does not hold.
var ErrPayloadNotFound = errors.New("async: payload not in this node's log")

// ErrClosed is returned by operations on a closed log or queue.
var ErrClosed = errors.New("async: closed")

// OpenPayloadLog opens (creating) the log in dir and indexes every intact
// record. A torn record at the end of the newest segment (a crash during a
// write) is cut off; a corrupt record elsewhere ends the indexing of its
// segment, and the records after it are reported lost.
func OpenPayloadLog(dir string, segmentBytes int64, log *slog.Logger) (*PayloadLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("async: payload log: %w", err)
	}
	l := &PayloadLog{dir: dir, segmentBytes: segmentBytes, log: log, index: map[string]recordLoc{},
		segs: map[uint64]*segment{}, writes: make(chan *appendReq, 1024), done: make(chan struct{})}
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, n := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".seg"), 16, 64)
		if err == nil {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	now := time.Now().UnixNano()
	for i, seq := range seqs {
		if err := l.load(seq, i == len(seqs)-1, now); err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	next := uint64(1)
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1] + 1
	}
	if err := l.rotateLocked(next); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.wg.Add(1)
	go l.writer()
	return l, nil
}

func (l *PayloadLog) segPath(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016x.seg", seq))
}

// load indexes one segment; newest says it may end in a torn record.
func (l *PayloadLog) load(seq uint64, newest bool, now int64) error {
	f, err := os.OpenFile(l.segPath(seq), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("async: payload log: %w", err)
	}
	// Unsealed while it is indexed: a record stored again later in the
	// same segment releases the earlier one, and a sealed segment whose
	// live count touches zero would be dropped in the middle of its scan.
	s := &segment{seq: seq, f: f}
	l.segs[seq] = s
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 256<<10)
	var off int64
	for {
		id, n, err := readRecord(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			if newest {
				l.log.Warn("payload log: cutting off a torn record at the end of the newest segment", "segment", seq, "offset", off, "err", err)
				if terr := f.Truncate(off); terr != nil {
					return fmt.Errorf("async: payload log truncate: %w", terr)
				}
			} else {
				l.log.Error("payload log: corrupt record; the rest of this segment is unreadable", "segment", seq, "offset", off, "err", err)
			}
			break
		}
		l.indexLocked(id, recordLoc{seg: seq, off: off, size: int32(n - recordHeader), written: now})
		off += int64(n)
	}
	s.size, s.sealed = off, true
	if s.live == 0 {
		l.dropSegmentLocked(s)
	}
	return nil
}

// readRecord reads one framed record and returns its id and total size.
func readRecord(r *bufio.Reader) (string, int, error) {
	var hdr [recordHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return "", 0, errors.New("short header")
		}
		return "", 0, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size == 0 || size > maxRecordBody {
		return "", 0, fmt.Errorf("bad record length %d", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", 0, errors.New("short body")
	}
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
		return "", 0, errors.New("checksum mismatch")
	}
	var p rpcpb.EventPayload
	if err := proto.Unmarshal(body, &p); err != nil || p.Id == "" {
		return "", 0, fmt.Errorf("undecodable record: %v", err)
	}
	return p.Id, recordHeader + int(size), nil
}

func (l *PayloadLog) indexLocked(id string, loc recordLoc) {
	if old, ok := l.index[id]; ok {
		l.releaseLocked(old)
	}
	l.index[id] = loc
	l.segs[loc.seg].live++
}

func (l *PayloadLog) releaseLocked(loc recordLoc) {
	s := l.segs[loc.seg]
	if s == nil {
		return
	}
	s.live--
	if s.live <= 0 && s.sealed {
		l.dropSegmentLocked(s)
	}
}

func (l *PayloadLog) dropSegmentLocked(s *segment) {
	s.f.Close()
	if err := os.Remove(l.segPath(s.seq)); err != nil && !os.IsNotExist(err) {
		l.log.Warn("payload log: removing an empty segment", "segment", s.seq, "err", err)
	}
	delete(l.segs, s.seq)
}

// rotateLocked seals the active segment and starts segment seq.
func (l *PayloadLog) rotateLocked(seq uint64) error {
	f, err := os.OpenFile(l.segPath(seq), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("async: payload log: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	if old := l.active; old != nil {
		old.sealed = true
		if old.live == 0 {
			l.dropSegmentLocked(old)
		}
	}
	l.active = &segment{seq: seq, f: f}
	l.segs[seq] = l.active
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append stores the payloads durably: it returns once they are written
// and fsynced (or the write failed). A payload whose id is already stored
// replaces it.
func (l *PayloadLog) Append(ps []*rpcpb.EventPayload) error {
	req := &appendReq{done: make(chan error, 1)}
	for _, p := range ps {
		body, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
		if err != nil {
			return err
		}
		if len(body) > maxRecordBody {
			return fmt.Errorf("async: payload of %s is %d bytes, over the record limit", p.Id, len(body))
		}
		rec := make([]byte, recordHeader+len(body))
		binary.BigEndian.PutUint32(rec[:4], uint32(len(body)))
		binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(body, crcTable))
		copy(rec[recordHeader:], body)
		req.recs = append(req.recs, rec)
		req.ids = append(req.ids, p.Id)
	}
	select {
	case l.writes <- req:
	case <-l.done:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-l.done:
		return ErrClosed
	}
}

// writer is the one goroutine that writes: it takes every request queued
// behind the first and commits them with one write and one fsync.
func (l *PayloadLog) writer() {
	defer l.wg.Done()
	for {
		var batch []*appendReq
		select {
		case req := <-l.writes:
			batch = append(batch, req)
		case <-l.done:
			return
		}
	more:
		for len(batch) < 4096 {
			select {
			case req := <-l.writes:
				batch = append(batch, req)
			default:
				break more
			}
		}
		err := l.commit(batch)
		for _, req := range batch {
			req.done <- err
		}
	}
}

func (l *PayloadLog) commit(batch []*appendReq) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.active.size >= l.segmentBytes {
		if err := l.rotateLocked(l.active.seq + 1); err != nil {
			return err
		}
	}
	s := l.active
	var buf []byte
	type pending struct {
		id  string
		loc recordLoc
	}
	var locs []pending
	now := time.Now().UnixNano()
	off := s.size
	for _, req := range batch {
		for i, rec := range req.recs {
			locs = append(locs, pending{req.ids[i], recordLoc{seg: s.seq, off: off, size: int32(len(rec) - recordHeader), written: now}})
			buf = append(buf, rec...)
			off += int64(len(rec))
		}
	}
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		_ = s.f.Truncate(s.size)
		return fmt.Errorf("async: payload log write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("async: payload log fsync: %w", err)
	}
	s.size = off
	for _, p := range locs {
		l.indexLocked(p.id, p.loc)
	}
	return nil
}

// Get returns a stored payload.
func (l *PayloadLog) Get(id string) (*rpcpb.EventPayload, error) {
	l.mu.Lock()
	loc, ok := l.index[id]
	var f *os.File
	if ok {
		f = l.segs[loc.seg].f
	}
	l.mu.Unlock()
	if !ok {
		return nil, ErrPayloadNotFound
	}
	buf := make([]byte, recordHeader+int(loc.size))
	if _, err := f.ReadAt(buf, loc.off); err != nil {
		// The segment may have been dropped by a concurrent Delete.
		return nil, fmt.Errorf("%w: %v", ErrPayloadNotFound, err)
	}
	body := buf[recordHeader:]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(buf[4:8]) {
		return nil, fmt.Errorf("async: payload of %s is corrupt on disk", id)
	}
	var p rpcpb.EventPayload
	if err := proto.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("async: payload of %s: %w", id, err)
	}
	return &p, nil
}

// Has reports whether the log holds id.
func (l *PayloadLog) Has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.index[id]
	return ok
}

// Delete forgets the payloads of ids (absent ids are ignored).
func (l *PayloadLog) Delete(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if loc, ok := l.index[id]; ok {
			delete(l.index, id)
			l.releaseLocked(loc)
		}
	}
}

// Sweep deletes every payload indexed before cutoff for which keep
// returns false, and reports how many it deleted. keep runs without the
// log's lock held.
func (l *PayloadLog) Sweep(cutoff time.Time, keep func(id string) bool) int {
	l.mu.Lock()
	var candidates []string
	for id, loc := range l.index {
		if loc.written < cutoff.UnixNano() {
			candidates = append(candidates, id)
		}
	}
	l.mu.Unlock()
	var drop []string
	for _, id := range candidates {
		if !keep(id) {
			drop = append(drop, id)
		}
	}
	l.Delete(drop...)
	return len(drop)
}

// Stats reports the number of payloads held, the segments on disk and
// their bytes.
func (l *PayloadLog) Stats() (payloads, segments int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		bytes += s.size
	}
	return len(l.index), len(l.segs), bytes
}

// Close stops the writer and closes the files. Pending appends fail.
func (l *PayloadLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.closeFiles()
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

func (l *PayloadLog) closeFiles() {
	for _, s := range l.segs {
		s.f.Close()
	}
}
