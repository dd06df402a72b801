package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Log layout on disk. Each sandbox writes one stream file:
//
//	LogDir/<account>/<function>/<yyyy>/<mm>/<dd>/[<version>]<sandbox id>
//
// named like a Lambda log stream (AWS_LAMBDA_LOG_STREAM_NAME is the part
// from <yyyy> on), inside a directory per log group. Every record is one
// line: an RFC 3339 UTC timestamp with milliseconds, a tab, and the message
// (function output line, or a START/END/REPORT platform line). A message
// never contains a newline.
const logTimeLayout = "2006-01-02T15:04:05.000Z"

// logStreamPath returns the stream's file path and its Lambda stream name.
func logStreamPath(logDir string, fn FunctionSpec, sandboxID string, t time.Time) (path, name string) {
	account := fn.AccountID
	if account == "" {
		account = "_"
	}
	name = fmt.Sprintf("%s/[%s]%s", t.UTC().Format("2006/01/02"), fn.version(), sandboxID)
	return filepath.Join(logDir, account, fn.FunctionName, filepath.FromSlash(name)), name
}

// logStream records one sandbox's output. A reader goroutine splits the
// sandbox's stdout+stderr pipe into lines; the invocation path writes the
// platform lines and collects each invocation's tail. Output is charged to
// the current capture; past LogCapBytes it is counted and dropped (the pipe
// is still drained, so a flooding function never blocks on a full pipe and
// never fills the node's disk).
type logStream struct {
	name     string
	capBytes int
	pipe     *os.File
	// gate bounds the output of the function across streams (nil: no
	// bound but capBytes); account and function are what it counts by.
	gate              *LogGate
	account, function string

	mu   sync.Mutex
	file *os.File
	// pending collects records until the next flushLocked: the records of
	// one quiet invocation (START, END, REPORT) cost one write(2).
	pending []byte
	cur     *capture
	// markedWindow is the gate's window in which this stream last wrote a
	// drop marker: one per window.
	markedWindow int64
	// diskDropped counts the bytes of records dropped because the gate
	// found the disk full, told in a marker once there is room again.
	diskDropped int64
	// flushers wait until the reader has consumed a given byte count.
	flushers []flushWaiter

	consumed atomic.Int64  // bytes read from the pipe so far
	done     chan struct{} // closed when the reader hits EOF
}

type flushWaiter struct {
	target int64
	ch     chan struct{}
}

// capture is what one invocation's log accumulates.
type capture struct {
	bytes     int   // function output recorded
	dropped   int64 // function output dropped past the cap
	truncNote bool  // the truncation notice was written
	tail      []byte
}

// openLogStream starts recording fn's output read from pipe into the
// stream file at path. It always returns a working stream: if the file
// cannot be opened (a full disk, a directory that cannot be made), the
// stream still drains the pipe and keeps the invocation's tail, and the
// error says why nothing reaches the disk. Logs never fail an invocation.
func openLogStream(path, name string, fn FunctionSpec, capBytes int, gate *LogGate, pipe *os.File) (*logStream, error) {
	ls := &logStream{name: name, capBytes: capBytes, pipe: pipe, gate: gate, account: fn.AccountID, function: fn.FunctionName,
		markedWindow: -1, cur: &capture{}, done: make(chan struct{})}
	f, err := openLogFile(path)
	if err == nil {
		ls.file = f
	}
	go ls.readLoop()
	return ls, err
}

// openLogFile opens (creating) a stream file and its directories. A retention
// sweep may remove an empty directory between the two steps; then they are
// tried once more.
func openLogFile(path string) (*os.File, error) {
	var err error
	for range 2 {
		if err = os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		var f *os.File
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// readLoop runs until every writer of the pipe is gone (the sandbox died).
func (ls *logStream) readLoop() {
	defer close(ls.done)
	buf := make([]byte, 4096)
	n := 0
	for {
		space := len(buf) - n
		m, err := ls.pipe.Read(buf[n:])
		if m > 0 {
			n += m
			ls.consumed.Add(int64(m))
			// Emit complete lines; a line longer than the buffer is cut.
			start := 0
			for {
				i := bytes.IndexByte(buf[start:n], '\n')
				if i < 0 {
					break
				}
				ls.functionLine(buf[start : start+i])
				start += i + 1
			}
			if start == 0 && n == len(buf) {
				ls.functionLine(buf[:n])
				start = n
			}
			n = copy(buf, buf[start:n])
			// A flush waiter wants everything written so far, including
			// a last line without its newline.
			if n > 0 && ls.flushWanted() {
				ls.functionLine(buf[:n])
				n = 0
			}
			ls.notifyFlushers()
			if m < space {
				ls.writePending() // the pipe is (momentarily) drained
			}
		}
		if err != nil {
			if n > 0 {
				ls.functionLine(buf[:n])
			}
			ls.notifyFlushers()
			ls.pipe.Close()
			return
		}
	}
}

func (ls *logStream) flushWanted() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.flushers) > 0
}

func (ls *logStream) notifyFlushers() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	c := ls.consumed.Load()
	kept := ls.flushers[:0]
	for _, w := range ls.flushers {
		if c >= w.target {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	ls.flushers = kept
}

// flush waits (at most limit) until the reader has recorded every byte that
// was in the pipe when flush was called. Called right after a response
// arrives, it puts everything the function printed before answering into
// this invocation's log, ahead of END.
func (ls *logStream) flush(limit time.Duration) {
	pending := 0
	if rc, err := ls.pipe.SyscallConn(); err == nil {
		// TIOCINQ is FIONREAD: the bytes waiting in the pipe.
		_ = rc.Control(func(fd uintptr) { pending, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	}
	if pending == 0 {
		return // the reader may hold a partial line; it is flushed at END
	}
	w := flushWaiter{target: ls.consumed.Load() + int64(pending), ch: make(chan struct{})}
	ls.mu.Lock()
	ls.flushers = append(ls.flushers, w)
	ls.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-w.ch:
	case <-ls.done:
	case <-t.C:
	}
}

func (ls *logStream) functionLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	ls.mu.Lock()
	defer ls.mu.Unlock()
	c := ls.cur
	if c.bytes+len(line)+1 > ls.capBytes {
		c.dropped += int64(len(line) + 1)
		if !c.truncNote {
			c.truncNote = true
			ls.recordLocked(fmt.Sprintf("[stoke] log output of this invocation exceeded %d bytes; further output is dropped", ls.capBytes))
		}
		return
	}
	if ls.gate != nil {
		if drop, window := ls.gate.admit(ls.account, ls.function, len(line)+1); drop != dropNone {
			c.dropped += int64(len(line) + 1)
			if ls.markedWindow != window {
				ls.markedWindow = window
				ls.recordLocked(ls.gate.marker(drop))
			}
			return
		}
	}
	c.bytes += len(line) + 1
	ls.recordLocked(string(line))
}

// platform records a START/END/REPORT line (never capped); it reaches the
// file at the next write point.
func (ls *logStream) platform(line string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.recordLocked(line)
}

// endInvocation records the END and REPORT lines and writes everything
// pending to the file.
func (ls *logStream) endInvocation(lines ...string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range lines {
		ls.recordLocked(l)
	}
	ls.writeLocked()
}

// writeLocked writes the pending records, unless the gate finds the log
// disk too full: then they are counted and dropped. A failing write is
// ignored: the function's log must never fail its invocation, and the
// node's own state needs the disk more.
func (ls *logStream) writeLocked() {
	if ls.file != nil && len(ls.pending) > 0 {
		switch {
		case ls.gate != nil && ls.gate.diskFull():
			ls.diskDropped += int64(len(ls.pending))
		case ls.diskDropped > 0:
			note := time.Now().UTC().AppendFormat(nil, logTimeLayout)
			note = append(append(append(note, '\t'), ls.gate.diskMarker(ls.diskDropped)...), '\n')
			ls.diskDropped = 0
			_, _ = ls.file.Write(append(note, ls.pending...))
		default:
			_, _ = ls.file.Write(ls.pending)
		}
	}
	ls.pending = ls.pending[:0]
	if cap(ls.pending) > 64<<10 {
		ls.pending = nil // do not keep a flood's buffer on an idle sandbox
	}
}

// writePending is called by the reader once it has drained the pipe, so
// output between invocations reaches the file too.
func (ls *logStream) writePending() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.writeLocked()
}

func (ls *logStream) recordLocked(msg string) {
	ls.pending = time.Now().UTC().AppendFormat(ls.pending, logTimeLayout)
	ls.pending = append(ls.pending, '\t')
	ls.pending = append(ls.pending, msg...)
	ls.pending = append(ls.pending, '\n')
	if len(ls.pending) >= 32<<10 {
		ls.writeLocked()
	}
	c := ls.cur
	c.tail = append(c.tail, msg...)
	c.tail = append(c.tail, '\n')
	if len(c.tail) > 2*LogTailBytes {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-LogTailBytes:]...)
	}
}

// begin starts a new capture at a warm invocation's START. A cold start
// keeps the capture made with the stream, so the Init phase's output is part
// of its first invocation's log tail.
func (ls *logStream) begin() {
	ls.mu.Lock()
	ls.cur = &capture{}
	ls.mu.Unlock()
}

// tail returns the last LogTailBytes of the current capture and frees it.
func (ls *logStream) tail() []byte {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	t := ls.cur.tail
	if len(t) > LogTailBytes {
		t = t[len(t)-LogTailBytes:]
	}
	out := bytes.Clone(t)
	// The tail buffer is not needed once read: an idle sandbox keeps no
	// log memory beyond the reader's buffer.
	ls.cur.tail = nil
	return out
}

// close waits for the reader to see EOF (bounded) and closes the file.
func (ls *logStream) close() {
	select {
	case <-ls.done:
	case <-time.After(time.Second):
		ls.pipe.Close()
		<-ls.done
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.writeLocked()
	if ls.file != nil {
		ls.file.Close()
		ls.file = nil
	}
}

// reportLine formats Lambda's REPORT line (tab-separated, like Lambda).
func reportLine(rid string, d time.Duration, billedMs int64, memMB, maxUsedMB int, initDur time.Duration, status, errType string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
		rid, ms(d), billedMs, memMB, maxUsedMB)
	if initDur > 0 {
		fmt.Fprintf(&b, "\tInit Duration: %.2f ms", ms(initDur))
	}
	if status != "" {
		fmt.Fprintf(&b, "\tStatus: %s", status)
		if errType != "" {
			fmt.Fprintf(&b, "\tError Type: %s", errType)
		}
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// billedMs rounds up to the next millisecond (Lambda bills per 1 ms).
func billedMs(d time.Duration) int64 {
	return int64(math.Ceil(ms(d)))
}

// logStreamFailed reports a sandbox whose log file could not be opened:
// the sandbox runs all the same, its output drained and kept for the
// invocation's tail only.
func (p *Pool) logStreamFailed(sb *sandbox, err error) {
	p.cfg.logger().Warn("a sandbox's log file could not be opened; its output is not written to disk",
		"sandbox", sb.id, "function", sb.fn.FunctionName, "err", err)
}
