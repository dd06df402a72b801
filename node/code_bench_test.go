package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/codepkg/codepkgtest"
	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
	"github.com/stokehq/stoke/runtime"
)

// Benchmarks of code replication, each beside a baseline in the same run:
//
//	go test -run '^$' -bench 'Replicate|CodeColdStart' -benchtime 5x ./node/
//
// They run code managers with real stores, gRPC servers on loopback and
// (for cold starts) a real sandbox pool, without Raft or gossip: a fake
// metadata replica holds the blob records.

// fakeCodeMeta is a one-replica FSM for benchmarks.
type fakeCodeMeta struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (m *fakeCodeMeta) Apply(_ context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	if data, err = fsm.Stamp(data, time.Now().UnixNano()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	res := m.f.Apply(m.index, data)
	return res.Value, res.Err
}

func (m *fakeCodeMeta) View() *fsm.View { return m.f.Store().View() }

// benchNodes are code managers that reach each other over loopback gRPC.
type benchNodes struct {
	meta  *fakeCodeMeta
	addrs map[string]string
	nodes map[string]*codeManager
	wire  map[string]*atomic.Int64 // bytes each node's server read off its sockets
	limit float64                  // bytes per second each server reads, 0: no limit
}

func newBenchNodes(b testing.TB, limitBytesPerSec float64, ids ...string) *benchNodes {
	return newBenchNodesIn(b, limitBytesPerSec, "", ids...)
}

// newBenchNodesIn puts the nodes' unpacked trees under unpackedRoot
// (empty: in their stores).
func newBenchNodesIn(b testing.TB, limitBytesPerSec float64, unpackedRoot string, ids ...string) *benchNodes {
	b.Helper()
	bn := &benchNodes{meta: &fakeCodeMeta{f: fsm.New()}, addrs: map[string]string{}, nodes: map[string]*codeManager{},
		wire: map[string]*atomic.Int64{}, limit: limitBytesPerSec}
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{NodeID: "bench", Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, id := range ids {
		if _, err := bn.meta.Apply(context.Background(), &fsmpb.UpsertNodeCmd{Header: &fsmpb.Header{}, Node: &fsmpb.Node{Id: id, MemoryMb: 8192}}); err != nil {
			b.Fatal(err)
		}
		var unpacked string
		if unpackedRoot != "" {
			unpacked = filepath.Join(unpackedRoot, id)
		}
		store, err := blob.Open(blob.Config{Dir: filepath.Join(b.TempDir(), id), UnpackedDir: unpacked, Limits: codepkg.DefaultLimits(), Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		m, err := newCodeManager(DefaultCodeConfig(), codeDeps{self: id, store: store, meta: bn.meta, sec: sec,
			isAlive: func(string) bool { return true }, isLeader: func() bool { return false },
			addrOf: func(n string) (string, bool) { a, ok := bn.addrs[n]; return a, ok }, logger: log})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		counter := &atomic.Int64{}
		srv := grpc.NewServer()
		rpcpb.RegisterBlobServer(srv, &blobService{m: m})
		go srv.Serve(&countingListener{Listener: ln, n: counter, limit: limitBytesPerSec})
		b.Cleanup(func() { srv.Stop(); m.close() })
		bn.addrs[id], bn.nodes[id], bn.wire[id] = ln.Addr().String(), m, counter
	}
	return bn
}

// countingListener counts (and optionally paces) the bytes read from
// accepted connections: what arrives over the wire, framing included.
type countingListener struct {
	net.Listener
	n     *atomic.Int64
	limit float64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n, limit: l.limit, start: time.Now()}, nil
}

type countingConn struct {
	net.Conn
	n     *atomic.Int64
	limit float64
	start time.Time
	read  int64
}

// Read paces the connection to limit bytes per second: a link of that
// bandwidth between the nodes (loopback itself is far faster).
func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	if c.limit > 0 && n > 0 {
		c.read += int64(n)
		if due := time.Duration(float64(c.read) / c.limit * float64(time.Second)); due > time.Since(c.start) {
			time.Sleep(due - time.Since(c.start))
		}
	}
	return n, err
}

var (
	benchCodeOnce     sync.Once
	benchCodeZip      []byte
	benchCodeManifest *codepkg.Manifest
	benchCodePkg      []byte
	benchCodeTar      []byte
	benchCodeErr      error
)

// loadBenchCode generates the realistic package once: codepkgtest's
// Python dependency tree at scale 1 (2,726 files, 51 MB unpacked, an
// 18.7 MB zip) with a trivial handler, its tar.zst and the plain tar.
func loadBenchCode(b *testing.B) {
	benchCodeOnce.Do(func() {
		ents := append([]codepkgtest.Entry{codepkgtest.File("app.py", "def handler(event, context):\n    return {\"ok\": True}\n")},
			codepkgtest.PythonDeps(1)...)
		if benchCodeZip, benchCodeErr = codepkgtest.Zip(ents...); benchCodeErr != nil {
			return
		}
		var pkg bytes.Buffer
		if benchCodeManifest, benchCodeErr = codepkg.ConvertBytes(benchCodeZip, codepkg.DefaultLimits(), &pkg); benchCodeErr != nil {
			return
		}
		benchCodePkg = pkg.Bytes()
		dec, err := zstd.NewReader(bytes.NewReader(benchCodePkg))
		if err != nil {
			benchCodeErr = err
			return
		}
		defer dec.Close()
		benchCodeTar, benchCodeErr = io.ReadAll(dec)
		if benchCodeErr == nil {
			// The plain tar really is one: the baseline ships valid content.
			_, benchCodeErr = tar.NewReader(bytes.NewReader(benchCodeTar)).Next()
		}
	})
	if benchCodeErr != nil {
		b.Fatal(benchCodeErr)
	}
}

// storeWithPackage stores the benchmark blob in m's store with pkg as its
// package bytes (the tar.zst, or the plain tar for the baseline), through
// the same Writer peers use.
func storeWithPackage(b *testing.B, m *codeManager, pkg []byte) {
	b.Helper()
	man := *benchCodeManifest
	sum := sha256.Sum256(pkg)
	man.TarZstSHA256Hex, man.TarZstSize = hex.EncodeToString(sum[:]), int64(len(pkg))
	js, err := json.Marshal(&man)
	if err != nil {
		b.Fatal(err)
	}
	w, err := m.store.NewWriter(man.ZipSHA256Hex, js, true)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Write(blob.PartPackage, pkg); err != nil {
		b.Fatal(err)
	}
	if err := w.Write(blob.PartZip, benchCodeZip); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplicate pushes the 51 MB Python tree from one node to two
// peers in parallel, as an upload with R = 3 does (the accepting node
// holds the third copy), and compares shipping the package as Stoke does
// (tar.zst) with shipping the same tar uncompressed. Both also ship the
// original zip, fsync and verify every byte on arrival. Reported: bytes
// read off the receivers' sockets (both copies, gRPC framing included)
// and the time until both are durable, on loopback and on a link paced
// to 1 Gbit/s per receiver.
func BenchmarkReplicate(b *testing.B) {
	loadBenchCode(b)
	for _, link := range []struct {
		name  string
		limit float64
	}{{"loopback", 0}, {"1Gbps", 125e6}} {
		b.Run(link.name, func(b *testing.B) {
			zstdNodes := newBenchNodes(b, link.limit, "src", "r1", "r2")
			rawNodes := newBenchNodes(b, link.limit, "src", "r1", "r2")
			storeWithPackage(b, zstdNodes.nodes["src"], benchCodePkg)
			storeWithPackage(b, rawNodes.nodes["src"], benchCodeTar)
			id := benchCodeManifest.ZipSHA256Hex
			run := func(bn *benchNodes) (time.Duration, int64) {
				for _, r := range []string{"r1", "r2"} {
					if err := bn.nodes[r].store.Delete(id); err != nil {
						b.Fatal(err)
					}
				}
				before := bn.wire["r1"].Load() + bn.wire["r2"].Load()
				start := time.Now()
				var wg sync.WaitGroup
				for _, r := range []string{"r1", "r2"} {
					wg.Go(func() {
						if created, err := bn.nodes["src"].push(context.Background(), r, id); err != nil || !created {
							b.Errorf("push to %s: created %v, %v", r, created, err)
						}
					})
				}
				wg.Wait()
				return time.Since(start), bn.wire["r1"].Load() + bn.wire["r2"].Load() - before
			}
			var zDur, rDur time.Duration
			var zBytes, rBytes int64
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					d, n := run(zstdNodes)
					zDur, zBytes = zDur+d, zBytes+n
					d, n = run(rawNodes)
					rDur, rBytes = rDur+d, rBytes+n
				} else {
					d, n := run(rawNodes)
					rDur, rBytes = rDur+d, rBytes+n
					d, n = run(zstdNodes)
					zDur, zBytes = zDur+d, zBytes+n
				}
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(zBytes)/n/1e6, "zstd-wire-MB")
			b.ReportMetric(float64(rBytes)/n/1e6, "plain-wire-MB")
			b.ReportMetric(float64(rBytes)/float64(zBytes), "wire-ratio")
			b.ReportMetric(float64(zDur.Milliseconds())/n, "zstd-ms")
			b.ReportMetric(float64(rDur.Milliseconds())/n, "plain-ms")
			b.ReportMetric(float64(rDur)/float64(zDur), "speedup")
			b.ReportMetric(float64(len(benchCodePkg))/1e6, "tarzst-MB")
			b.ReportMetric(float64(len(benchCodeTar))/1e6, "tar-MB")
			b.ReportMetric(float64(len(benchCodeZip))/1e6, "zip-MB")
		})
	}
}

// BenchmarkCodeColdStart measures a cold start (Pool.Invoke of a new
// sandbox, through to the response) of a Python function whose code is
// the 51 MB tree, in three states of the node: the tree already unpacked
// (the baseline), only the blob stored locally (unpack first), and the
// blob on a peer only (fetch the package over loopback gRPC, then
// unpack). Every iteration measures the three in turn, each on a fresh
// pool so that no warm sandbox or held tree carries over, then times the
// fetch alone (fetch-only-ms: the 16.7 MB package into the store,
// verified and fsynced).
func BenchmarkCodeColdStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("sandboxes need root")
	}
	loadBenchCode(b)
	// STOKE_BENCH_UNPACKED_DIR puts the unpacked trees elsewhere (a tmpfs:
	// /dev/shm); by default they sit in the stores' temporary directories.
	var unpackedRoot string
	if d := os.Getenv("STOKE_BENCH_UNPACKED_DIR"); d != "" {
		var err error
		if unpackedRoot, err = os.MkdirTemp(d, "stoke-bench-*"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { codepkg.RemoveTree(unpackedRoot) })
	}
	bn := newBenchNodesIn(b, 0, unpackedRoot, "peer", "local")
	peer, local := bn.nodes["peer"], bn.nodes["local"]
	storeWithPackage(b, peer, benchCodePkg)
	id := benchCodeManifest.ZipSHA256Hex
	if _, err := bn.meta.Apply(context.Background(), &fsmpb.PutBlobCmd{Header: &fsmpb.Header{},
		Blob: &fsmpb.Blob{Id: id, ZipSize: int64(len(benchCodeZip)), Replicas: []string{"peer"}}}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	newPool := func() *runtime.Pool {
		pc := runtime.DefaultPoolConfig()
		pc.StateDir, pc.LogDir = filepath.Join(dir, "sandboxes"), filepath.Join(dir, "logs")
		pc.Code, pc.MemoryBudgetMB = local, 4096
		pc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		p, err := runtime.NewPool(pc)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	coldStart := func(state string, i int) time.Duration {
		// Arrange the node's state with no pool holding the tree.
		switch state {
		case "fetched":
			if err := local.store.Delete(id); err != nil {
				b.Fatal(err)
			}
			evictAll(b, local.store)
		case "local-blob":
			if _, err := local.ensure(context.Background(), id, false, nil); err != nil {
				b.Fatal(err)
			}
			evictAll(b, local.store)
		case "unpacked":
			_, rel, err := local.Acquire(context.Background(), id)
			if err != nil {
				b.Fatal(err)
			}
			rel()
		}
		pool := newPool()
		defer pool.Close(context.Background())
		spec := runtime.FunctionSpec{Key: fmt.Sprintf("%s-%d", state, i), FunctionName: "bench", Version: "$LATEST",
			AccountID: "123456789012", Region: "local", Runtime: "python3.11", Handler: "app.handler",
			MemoryMB: 512, EphemeralStorageMB: 512, Timeout: time.Minute, CodeID: id}
		start := time.Now()
		res, err := pool.Invoke(context.Background(), spec, runtime.Invocation{RequestID: spec.Key, Payload: []byte("{}")})
		took := time.Since(start)
		if err != nil || res.FunctionError != "" || !res.ColdStart {
			b.Fatalf("%s: %v %s cold=%v %s", state, err, res.FunctionError, res.ColdStart, res.Payload)
		}
		return took
	}
	states := []string{"unpacked", "local-blob", "fetched"}
	sums := map[string]time.Duration{}
	coldStart("unpacked", -1) // warm the page cache and the interpreter once
	b.ResetTimer()
	var fetchOnly time.Duration
	for i := range b.N {
		for k := range states {
			s := states[(i+k)%len(states)]
			sums[s] += coldStart(s, i)
		}
		// The fetch alone: the package into the local store, no unpack.
		if err := local.store.Delete(id); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := local.ensure(context.Background(), id, false, nil); err != nil {
			b.Fatal(err)
		}
		fetchOnly += time.Since(start)
	}
	b.StopTimer()
	ms := func(s string) float64 { return float64(sums[s].Milliseconds()) / float64(b.N) }
	b.ReportMetric(ms("unpacked"), "unpacked-ms")
	b.ReportMetric(ms("local-blob"), "local-blob-ms")
	b.ReportMetric(ms("fetched"), "fetched-ms")
	b.ReportMetric(ms("local-blob")/ms("unpacked"), "local-blob-ratio")
	b.ReportMetric(ms("fetched")/ms("unpacked"), "fetched-ratio")
	b.ReportMetric(float64(fetchOnly.Milliseconds())/float64(b.N), "fetch-only-ms")
}

// evictAll removes every unpacked tree (none is in use between runs).
func evictAll(b *testing.B, s *blob.Store) {
	b.Helper()
	if _, err := s.EvictTrees(1); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	if u := s.Usage(); u.Trees != 0 {
		b.Fatalf("%d trees left after eviction", u.Trees)
	}
}
