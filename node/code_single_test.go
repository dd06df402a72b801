package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// TestCodeOnOneNode covers what a lone node does with code (R = 1):
// the replica record, invocation, the byte-for-byte download, the account
// storage limit and its usage, collection after a delete, and the config
// checks. It runs with -short.
func TestCodeOnOneNode(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NoAuth = true
	cfg.Code.RepairInterval = 100 * time.Millisecond
	cfg.Code.GCGrace = time.Second
	// Warm sandboxes hold their tree; they go idle quickly here, so the
	// tree of a collected package is evicted soon after.
	cfg.Worker.IdleTimeout = time.Second
	a := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	account := adminAccount(a)

	z, files := pythonFunction(t, "one", 0.01, 0)
	id := blob.IDOf(z)
	if err := createPython(ctx, a, "one", z); err != nil {
		t.Fatal(err)
	}
	if rec := a.Metadata().View().Blob(id); rec == nil || len(rec.Replicas) != 1 || rec.Replicas[0] != a.NodeID() ||
		rec.ZipSize != int64(len(z)) || rec.PlacementKey != account+"/one" {
		t.Fatalf("record = %v", rec)
	}
	if got, err := invokeFiles(ctx, a, "one"); err != nil || got != files {
		t.Fatalf("invoke: %d files, %v", got, err)
	}
	if got := download(ctx, t, a, "one"); !bytes.Equal(got, z) {
		t.Fatal("download differs from the upload")
	}

	// The limit counts distinct packages; the same zip again is free.
	if _, err := a.Metadata().Apply(ctx, &fsmpb.UpdateAccountCmd{Header: &fsmpb.Header{}, AccountId: account,
		CodeStorageLimit: int64(len(z)) + 100}); err != nil {
		t.Fatal(err)
	}
	other, _ := pythonFunction(t, "two", 0.01, 0)
	err := createPython(ctx, a, "two", other)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Type != "CodeStorageExceededException" {
		t.Fatalf("upload past the limit: %v, want 400 CodeStorageExceededException", err)
	}
	if a.Blobs().Has(blob.IDOf(other)) {
		t.Fatal("a package over the limit was stored")
	}
	if err := createPython(ctx, a, "one-again", z); err != nil {
		t.Fatalf("the same package for a second function: %v", err)
	}
	var settings struct {
		AccountLimit struct{ TotalCodeSize int64 }
		AccountUsage struct{ TotalCodeSize, FunctionCount int64 }
	}
	if err := call(ctx, a, "GET", "/2016-08-19/account-settings", nil, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.AccountUsage.TotalCodeSize != int64(len(z)) || settings.AccountUsage.FunctionCount != 2 ||
		settings.AccountLimit.TotalCodeSize != int64(len(z))+100 {
		t.Fatalf("account settings = %+v", settings)
	}

	// Deleting one function keeps the shared package; deleting both
	// collects it.
	for _, name := range []string{"one", "one-again"} {
		if err := call(ctx, a, "DELETE", "/2015-03-31/functions/"+name, nil, nil); err != nil {
			t.Fatal(err)
		}
		if name == "one" {
			clustertest.WaitFor(t, 5*time.Second, func() error {
				if !a.Blobs().HasZip(id) || a.Metadata().View().Blob(id) == nil {
					return errors.New("a package still in use was collected")
				}
				return nil
			})
		}
	}
	clustertest.WaitFor(t, 20*time.Second, func() error {
		if a.Blobs().Has(id) || a.Metadata().View().Blob(id) != nil {
			return fmt.Errorf("package still stored (record %v)", a.Metadata().View().Blob(id))
		}
		if u := a.Blobs().Usage(); u.Trees != 0 {
			return fmt.Errorf("%d unpacked trees left (%d in use)", u.Trees, u.TreesInUse)
		}
		return nil
	})
	if s := a.CodeStats(); s.Collected != 1 || s.Fetches != 0 {
		t.Fatalf("stats = %+v", s)
	}

	// A function whose package has no record (stored before records
	// existed) gets one from the leader, naming the nodes that hold it.
	old, _ := pythonFunction(t, "legacy", 0.01, 0)
	man, err := a.Blobs().Put(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Metadata().Apply(ctx, &fsmpb.CreateFunctionCmd{Header: &fsmpb.Header{AccountId: account}, Name: "legacy",
		Config: &fsmpb.FunctionConfig{Runtime: "python3.11", Handler: "app.handler", MemoryMb: 128, TimeoutS: 3, EphemeralMb: 512,
			CodeSha256: man.CodeSha256, CodeSize: man.ZipSize, BlobId: man.ZipSHA256Hex}}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, func() error {
		rec := a.Metadata().View().Blob(man.ZipSHA256Hex)
		if rec == nil || len(rec.Replicas) != 1 || rec.Replicas[0] != a.NodeID() || rec.PlacementKey != account+"/legacy" {
			return fmt.Errorf("record = %v", rec)
		}
		return nil
	})
}

func TestCodeConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*CodeConfig){
		"no replicas":       func(c *CodeConfig) { c.Replicas = 0 },
		"no min replicas":   func(c *CodeConfig) { c.MinReplicas = 0 },
		"tiny chunks":       func(c *CodeConfig) { c.ChunkBytes = 100 },
		"huge chunks":       func(c *CodeConfig) { c.ChunkBytes = 8 << 20 },
		"no grace":          func(c *CodeConfig) { c.GCGrace = 0 },
		"no repair":         func(c *CodeConfig) { c.RepairInterval = 0 },
		"negative budget":   func(c *CodeConfig) { c.UnpackedBudgetBytes = -1 },
		"no transfer bound": func(c *CodeConfig) { c.TransferTimeout = 0 },
	} {
		c := DefaultCodeConfig()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	c := DefaultCodeConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
