package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// TestFetchTriesTheNextSource runs code managers over loopback gRPC
// without agents: a fetch skips a source without an address and one whose
// copy is corrupt (which notices and deletes it), lands a verified cached
// copy, and a download streamed from a peer is the zip byte for byte.
func TestFetchTriesTheNextSource(t *testing.T) {
	bn := newBenchNodes(t, 0, "good", "bad", "here")
	good, bad, here := bn.nodes["good"], bn.nodes["bad"], bn.nodes["here"]
	z, _ := pythonFunction(t, "transport", 0.01, 1<<20)
	ctx := context.Background()
	for _, m := range []*codeManager{good, bad} {
		if _, err := m.store.Put(ctx, z); err != nil {
			t.Fatal(err)
		}
	}
	id := blob.IDOf(z)
	p := filepath.Join(bad.store.Dir(), "blobs", id[:2], id, "package.tar.zst")
	pkg, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pkg[len(pkg)-10] ^= 0xff
	if err := os.WriteFile(p, pkg, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bn.meta.Apply(ctx, &fsmpb.PutBlobCmd{Header: &fsmpb.Header{},
		Blob: &fsmpb.Blob{Id: id, ZipSize: int64(len(z)), Replicas: []string{"bad", "good"}}}); err != nil {
		t.Fatal(err)
	}

	// Concurrent callers share the fetch; the sources are tried in order.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			src, err := here.ensure(ctx, id, false, []string{"nowhere", "bad", "good"})
			if err != nil || src != "good" && src != "here" {
				t.Errorf("fetched from %q: %v", src, err)
			}
		})
	}
	wg.Wait()
	if s := here.stats(); s.Fetches != 1 || s.FetchErrors != 0 {
		t.Fatalf("stats of the fetching node: %+v", s)
	}
	if !here.store.Has(id) || here.store.HasZip(id) {
		t.Fatal("want a cached copy (package, no zip)")
	}
	if err := here.store.Verify(id); err != nil {
		t.Fatal(err)
	}
	if bad.store.Has(id) || bad.stats().Corruptions != 1 {
		t.Fatalf("the corrupt source kept its copy (corruptions %d)", bad.stats().Corruptions)
	}

	// A download on a node without the zip streams it from a replica.
	rc, n, err := here.openZip(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || n != int64(len(z)) || !bytes.Equal(got, z) {
		t.Fatalf("download: %d bytes (%v), want the %d-byte upload", len(got), err, len(z))
	}
	if _, _, err := here.openZip(ctx, blob.IDOf([]byte("unknown"))); !errors.Is(err, errNoSource) {
		t.Fatalf("download of an unknown blob: %v", err)
	}
}
