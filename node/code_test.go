package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/blob"
)

// TestCodeReplication runs issue 7's scenarios on one three-node cluster
// with R = 2, so that one node always lacks each package: refusal before
// replication, a 30 MB package invocable everywhere and downloadable byte
// for byte, one fetch for twenty cold starts, corruption found on read
// and by the scrub, collection after a delete, and the loss of the node
// that accepted an upload.
func TestCodeReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with sandboxes; skipped with -short")
	}
	c := newCodeCluster(t, 3, func(cfg *Config) {
		cfg.Code.Replicas = 2
		cfg.Code.GCGrace = 2 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := c.agent(c.ids[0])
	account := adminAccount(first)

	t.Run("bad archives are refused before anything is replicated", func(t *testing.T) {
		for name, z := range badArchives(t) {
			err := createPython(ctx, first, "bad", z)
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Type != "InvalidParameterValueException" {
				t.Fatalf("%s: %v, want 400 InvalidParameterValueException", name, err)
			}
		}
		for node, ids := range c.allBlobs() {
			if len(ids) != 0 {
				t.Fatalf("%s stores %d blobs after refused uploads", node, len(ids))
			}
		}
		for _, a := range c.live() {
			if s := a.CodeStats(); s.Pushes != 0 || s.BytesReceived != 0 {
				t.Fatalf("%s moved code for refused uploads: %+v", a.NodeID(), s)
			}
			if n := len(a.Metadata().View().Blobs()); n != 0 {
				t.Fatalf("%s has %d blob records", a.NodeID(), n)
			}
		}
	})

	t.Run("an upload that cannot be replicated is refused and leaves nothing", func(t *testing.T) {
		for _, a := range c.live()[1:] {
			a.code.refusePushes.Store(true)
		}
		defer func() {
			for _, a := range c.live() {
				a.code.refusePushes.Store(false)
			}
		}()
		z, _ := pythonFunction(t, "refused", 0.01, 0)
		err := createPython(ctx, first, "refused", z)
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != 500 || ae.Type != "ServiceException" {
			t.Fatalf("create with no replica reachable: %v, want 500 ServiceException", err)
		}
		for _, a := range c.live() {
			v := a.Metadata().View()
			if v.Function(account, "refused") != nil || v.Blob(blob.IDOf(z)) != nil || a.Blobs().Has(blob.IDOf(z)) {
				t.Fatalf("%s kept part of a refused upload", a.NodeID())
			}
		}
	})

	t.Run("a 30 MB package is invocable from every node", func(t *testing.T) {
		// A small dependency tree and 29 MB of model weights: the size
		// is what matters here (the benchmarks measure realistic trees).
		z, files := pythonFunction(t, "big", 0.05, 29<<20)
		if len(z) < 28<<20 || len(z) > 34<<20 {
			t.Fatalf("package is %d bytes, want about 30 MB", len(z))
		}
		if err := createPython(ctx, first, "big", z); err != nil {
			t.Fatal(err)
		}
		id := blob.IDOf(z)
		rec := first.Metadata().View().Blob(id)
		if rec == nil || len(rec.Replicas) < 2 {
			t.Fatalf("record after 201: %v", rec)
		}
		if got := c.holders(id); !slices.Equal(got, rec.Replicas) {
			t.Fatalf("complete copies on %v, record names %v", got, rec.Replicas)
		}
		for _, want := range c.preferred(t, "big", 2) {
			if !slices.Contains(rec.Replicas, want) {
				t.Fatalf("preferred node %s lacks the package (replicas %v)", want, rec.Replicas)
			}
		}
		c.waitFunction(t, "big")
		for _, a := range c.live() {
			got, err := invokeFiles(ctx, a, "big")
			if err != nil || got != files {
				t.Fatalf("invoke through %s: %d files, %v; want %d", a.NodeID(), got, err, files)
			}
		}
		// Downloads return the upload byte for byte, from a node that
		// holds the zip and from one that does not.
		for _, a := range c.live() {
			if got := download(ctx, t, a, "big"); !bytes.Equal(got, z) {
				t.Fatalf("download through %s differs from the upload (%d bytes, want %d)", a.NodeID(), len(got), len(z))
			}
		}
		var settings struct{ AccountUsage struct{ TotalCodeSize int64 } }
		if err := call(ctx, first, "GET", "/2016-08-19/account-settings", nil, &settings); err != nil {
			t.Fatal(err)
		}
		if settings.AccountUsage.TotalCodeSize != int64(len(z)) {
			t.Fatalf("TotalCodeSize = %d, want %d", settings.AccountUsage.TotalCodeSize, len(z))
		}
	})

	// fanout is uploaded through one of its preferred nodes, so that
	// exactly R = 2 nodes hold it and the third must fetch.
	fanoutZip, fanoutFiles := pythonFunction(t, "fanout", 0.05, 2<<20)
	fanoutID := blob.IDOf(fanoutZip)
	pref := c.preferred(t, "fanout", 3)
	replicaA, lacking := c.agent(pref[0]), c.agent(pref[2])

	t.Run("twenty concurrent cold starts on a node lacking the blob fetch it once", func(t *testing.T) {
		if err := createPython(ctx, replicaA, "fanout", fanoutZip); err != nil {
			t.Fatal(err)
		}
		if got := c.holders(fanoutID); !slices.Equal(got, sortedCopy(pref[:2])) {
			t.Fatalf("holders %v, want %v", got, pref[:2])
		}
		c.waitFunction(t, "fanout")
		before := lacking.CodeStats()
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				<-start
				// On lacking itself: routing would send it to a holder.
				got, err := invokeFilesHere(ctx, t, lacking, "fanout")
				if err == nil && got != fanoutFiles {
					err = fmt.Errorf("%d files, want %d", got, fanoutFiles)
				}
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		after := lacking.CodeStats()
		if n := after.Fetches - before.Fetches; n != 1 {
			t.Fatalf("%s fetched the package %d times for 20 concurrent invocations, want 1", lacking.NodeID(), n)
		}
		t.Logf("%d callers joined the running fetch", after.FetchWaiters-before.FetchWaiters)
		if lacking.Blobs().HasZip(fanoutID) || !lacking.Blobs().Has(fanoutID) {
			t.Fatal("the fetching node should cache the package without becoming a replica")
		}
	})

	t.Run("a corrupt copy is detected on read and refetched; the sandbox runs good code", func(t *testing.T) {
		// A function nobody has run yet, so no node has its tree unpacked
		// and the first invocation on a replica must read the package.
		z, files := pythonFunction(t, "corrupt", 0.02, 0)
		id := blob.IDOf(z)
		p := c.preferred(t, "corrupt", 2)
		if err := createPython(ctx, c.agent(p[0]), "corrupt", z); err != nil {
			t.Fatal(err)
		}
		c.waitFunction(t, "corrupt")
		victim := c.agent(p[1])
		if !victim.Blobs().HasZip(id) {
			t.Fatalf("%s is not a replica of the new package", victim.NodeID())
		}
		flipByte(t, victim, id, "package.tar.zst")
		before := victim.CodeStats()
		// Run it on the victim itself: routing could send it elsewhere.
		got, err := invokeFilesHere(ctx, t, victim, "corrupt")
		if err != nil || got != files {
			t.Fatalf("invoke on the node with the corrupt copy: %d files, %v", got, err)
		}
		if victim.CodeStats().Corruptions != before.Corruptions+1 {
			t.Fatal("the corruption was not detected")
		}
		clustertest.WaitFor(t, 20*time.Second, func() error {
			if !victim.Blobs().HasZip(id) {
				return errors.New("complete copy not fetched back yet")
			}
			return victim.Blobs().Verify(id)
		})
	})

	t.Run("the scrub finds a corrupt zip nobody reads and it is refetched", func(t *testing.T) {
		flipByte(t, replicaA, fanoutID, "code.zip")
		before := replicaA.CodeStats()
		if n := replicaA.ScrubCode(ctx); n != 1 {
			t.Fatalf("scrub found %d corrupt blobs, want 1", n)
		}
		clustertest.WaitFor(t, 20*time.Second, func() error {
			if replicaA.CodeStats().Refetched == before.Refetched {
				return errors.New("not refetched yet")
			}
			return replicaA.Blobs().Verify(fanoutID)
		})
		if got := download(ctx, t, replicaA, "fanout"); !bytes.Equal(got, fanoutZip) {
			t.Fatal("download after repair differs from the upload")
		}
	})

	t.Run("deleting a function frees its blobs on every node after the grace period", func(t *testing.T) {
		if err := call(ctx, first, "DELETE", "/2015-03-31/functions/fanout", nil, nil); err != nil {
			t.Fatal(err)
		}
		bigID := blobOf(t, first, "big")
		clustertest.WaitFor(t, 30*time.Second, func() error {
			for _, a := range c.live() {
				if a.Blobs().Has(fanoutID) {
					return fmt.Errorf("%s still holds the deleted function's blob", a.NodeID())
				}
				if a.Metadata().View().Blob(fanoutID) != nil {
					return fmt.Errorf("%s still has its record", a.NodeID())
				}
			}
			return nil
		})
		if got := c.holders(bigID); len(got) < 2 {
			t.Fatalf("the referenced blob lost copies: %v", got)
		}
	})

	t.Run("losing the node that accepted an upload leaves R-1 copies, then repair makes R", func(t *testing.T) {
		z, files := pythonFunction(t, "survivor", 0.02, 0)
		id := blob.IDOf(z)
		p := c.preferred(t, "survivor", 3)
		acceptor := c.agent(p[0])
		// Repair waits until the copies left have been counted.
		for _, a := range c.live() {
			a.code.pauseRepair.Store(true)
		}
		if err := createPython(ctx, acceptor, "survivor", z); err != nil {
			t.Fatal(err)
		}
		c.stop(acceptor.NodeID()) // right after 201, no goodbye
		c.waitFunction(t, "survivor")
		if got := c.holders(id); len(got) != 1 || got[0] != p[1] {
			t.Fatalf("after losing %s: complete copies on %v, want R-1 = 1 on %s", p[0], got, p[1])
		}
		for _, a := range c.live() {
			// Right after losing a node the survivors may still be
			// re-establishing concurrency leases (429, which SDKs retry).
			clustertest.WaitFor(t, 20*time.Second, func() error {
				got, err := invokeFiles(ctx, a, "survivor")
				if err == nil && got != files {
					t.Fatalf("invoke through %s after the loss: %d files, want %d", a.NodeID(), got, files)
				}
				return err
			})
		}
		for _, a := range c.live() {
			a.code.pauseRepair.Store(false)
		}
		clustertest.WaitFor(t, 60*time.Second, func() error {
			got := c.holders(id)
			if len(got) != 2 {
				return fmt.Errorf("complete copies on %v", got)
			}
			for _, a := range c.live() {
				rec := a.Metadata().View().Blob(id)
				for _, n := range got {
					if rec == nil || !slices.Contains(rec.Replicas, n) {
						return fmt.Errorf("%s's record %v lacks %s", a.NodeID(), rec, n)
					}
				}
			}
			return nil
		})
		if s := c.agent(p[2]).CodeStats(); s.BytesReceived == 0 {
			t.Fatal("the third node holds a copy without having received one")
		}
	})
}

// flipByte changes one byte in the middle of a stored blob file.
func flipByte(t *testing.T, a *Agent, id, name string) {
	t.Helper()
	p := filepath.Join(a.cfg.DataDir, "code", "blobs", id[:2], id, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
