package async

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/proto/rpcpb"
)

func openLog(t *testing.T, dir string, segment int64) *PayloadLog {
	t.Helper()
	l, err := OpenPayloadLog(dir, segment, clustertest.Logger(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func payload(id string, n int) *rpcpb.EventPayload {
	return &rpcpb.EventPayload{Id: id, Payload: bytes.Repeat([]byte{'x'}, n), ClientContext: "{}"}
}

func TestPayloadLogSurvivesRestartAndDropsEmptySegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 1<<20)
	for i := range 40 {
		if err := l.Append([]*rpcpb.EventPayload{payload(fmt.Sprint("e", i), 100<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	n, segs, _ := l.Stats()
	if n != 40 || segs < 3 {
		t.Fatalf("%d payloads in %d segments; want 40 in several", n, segs)
	}
	// Deleting the first 20 empties the oldest segments, which go away.
	for i := range 20 {
		l.Delete(fmt.Sprint("e", i))
	}
	if _, after, _ := l.Stats(); after >= segs {
		t.Fatalf("segments %d -> %d after deleting half the payloads", segs, after)
	}
	if _, err := l.Get("e3"); !errors.Is(err, ErrPayloadNotFound) {
		t.Fatalf("deleted payload: %v", err)
	}
	l.Close()

	// Deletions are not logged: payloads deleted from a segment that still
	// holds live ones come back after a restart (the sweep, which knows
	// from the replicated state what still exists, deletes them again);
	// those in removed segments stay gone.
	again := openLog(t, dir, 1<<20)
	if n, _, _ := again.Stats(); n < 20 || n >= 40 {
		t.Fatalf("%d payloads after restart, want the 20 kept plus at most a segment's worth", n)
	}
	if again.Has("e0") {
		t.Fatal("a payload of a removed segment came back")
	}
	got, err := again.Get("e33")
	if err != nil || len(got.Payload) != 100<<10 || got.ClientContext != "{}" {
		t.Fatalf("payload after restart: %v", err)
	}
}

func TestPayloadLogCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 64<<20)
	if err := l.Append([]*rpcpb.EventPayload{payload("a", 10), payload("b", 10)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var newest string
	for _, s := range segs {
		if fi, _ := os.Stat(s); fi.Size() > 0 {
			newest = s
		}
	}
	f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Half a record: a length and a checksum, then a crash.
	f.Write([]byte{0, 0, 0, 50, 1, 2, 3, 4, 'x'})
	f.Close()
	again := openLog(t, dir, 64<<20)
	if n, _, _ := again.Stats(); n != 2 {
		t.Fatalf("%d payloads after a torn tail, want 2", n)
	}
	if err := again.Append([]*rpcpb.EventPayload{payload("c", 10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Get("c"); err != nil {
		t.Fatal(err)
	}
}

// A segment that holds a payload twice (stored again under the same id)
// reopens with the newer copy; the older one must not empty the segment
// while it is being indexed.
func TestPayloadLogReopensASegmentHoldingAnIDTwice(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, 64<<20)
	for _, n := range []int{10, 20} {
		if err := l.Append([]*rpcpb.EventPayload{payload("a", n)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	again := openLog(t, dir, 64<<20)
	got, err := again.Get("a")
	if err != nil || len(got.Payload) != 20 {
		t.Fatalf("payload after restart: %v, %v", got, err)
	}
	if n, segs, _ := again.Stats(); n != 1 || segs != 2 {
		t.Fatalf("%d payloads in %d segments after restart, want 1 in the old segment and the new active one", n, segs)
	}
}

func TestPayloadLogGroupCommitsConcurrentAppends(t *testing.T) {
	l := openLog(t, t.TempDir(), 64<<20)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append([]*rpcpb.EventPayload{payload(fmt.Sprint("e", i), 512)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _, _ := l.Stats(); n != 200 {
		t.Fatalf("%d payloads, want 200", n)
	}
	// Sweep keeps what keep says and what is younger than the cutoff.
	dropped := l.Sweep(time.Now().Add(time.Hour), func(id string) bool { return id < "e5" })
	if n, _, _ := l.Stats(); n+dropped != 200 || !l.Has("e42") || l.Has("e7") {
		t.Fatalf("sweep dropped %d, kept %d", dropped, n)
	}
	if l.Sweep(time.Now().Add(-time.Hour), func(string) bool { return false }) != 0 {
		t.Fatal("sweep dropped payloads younger than its cutoff")
	}
}

// FuzzPayloadLogOpen: whatever bytes a segment holds, opening the log
// never panics, keeps only records whose checksum holds, and the log
// still takes appends.
func FuzzPayloadLogOpen(f *testing.F) {
	dir := f.TempDir()
	l, err := OpenPayloadLog(dir, 64<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	if err := l.Append([]*rpcpb.EventPayload{payload("a", 10), payload("b", 3)}); err != nil {
		f.Fatal(err)
	}
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, s := range segs {
		if b, _ := os.ReadFile(s); len(b) > 0 {
			f.Add(b)
		}
	}
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := OpenPayloadLog(dir, 1<<20, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		n, _, _ := l.Stats()
		if n > len(seg)/recordHeader {
			t.Fatalf("%d payloads indexed from %d bytes", n, len(seg))
		}
		if err := l.Append([]*rpcpb.EventPayload{payload("new", 5)}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Get("new"); err != nil {
			t.Fatal(err)
		}
	})
}
