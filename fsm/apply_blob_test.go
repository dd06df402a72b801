package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// applyCase is the shape of TestApplyCommands' table rows (an alias of
// the same struct type, so this file can contribute rows).
type applyCase = struct {
	name  string
	setup []Command
	cmd   Command
	want  Code
	check func(t *testing.T, v *View, res *fsmpb.ApplyResult)
}

func blobID(n int) string { return fmt.Sprintf("%064x", n) }

func putBlob(id string, replicas ...string) *fsmpb.PutBlobCmd {
	return &fsmpb.PutBlobCmd{Header: hdr(""), Blob: &fsmpb.Blob{
		Id: id, ZipSize: 100, PackageSize: 90, UnpackedSize: 400, PackageSha256: strings.Repeat("ab", 32),
		Replicas: replicas, PlacementKey: testAccount + "/fn",
	}}
}

// fnWithBlob creates function name in testAccount whose code is blob id.
func fnWithBlob(name, id string, publish bool) *fsmpb.CreateFunctionCmd {
	cfg := testConfig("sha-" + id[60:])
	cfg.BlobId = id
	return &fsmpb.CreateFunctionCmd{Header: hdr(testAccount), Name: name, Config: cfg, Publish: publish}
}

func collect(grace time.Duration) *fsmpb.CollectBlobsCmd {
	return &fsmpb.CollectBlobsCmd{Header: hdr(""), GraceNanos: int64(grace)}
}

func replicasOf(t *testing.T, v *View, id string) []string {
	t.Helper()
	b := v.Blob(id)
	if b == nil {
		t.Fatalf("blob %s has no record", id[:8])
	}
	return b.Replicas
}

// blobApplyCases are TestApplyCommands rows for the blob commands. The
// replica clock advances one second per command.
func blobApplyCases() []applyCase {
	b1 := blobID(1)
	withBlob := []Command{putBlob(b1, "n2", "n1")}
	return []applyCase{
		{name: "put blob", cmd: putBlob(b1, "n3", "n1", "n1"), check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			b := v.Blob(b1)
			if b == nil || !slices.Equal(b.Replicas, []string{"n1", "n3"}) || b.CreatedUnixNano == 0 ||
				b.UpdatedUnixNano != b.CreatedUnixNano || b.ZipSize != 100 || b.PlacementKey != testAccount+"/fn" {
				t.Fatalf("blob = %v", b)
			}
		}},
		{name: "put blob again merges replicas and keeps creation time", setup: withBlob, cmd: putBlob(b1, "n3"),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				b := v.Blob(b1)
				if !slices.Equal(b.Replicas, []string{"n1", "n2", "n3"}) || b.UpdatedUnixNano <= b.CreatedUnixNano {
					t.Fatalf("blob = %v", b)
				}
			}},
		{name: "put blob with bad id", cmd: putBlob("XYZ", "n1"), want: CodeInvalid},
		{name: "put blob without replicas", cmd: putBlob(b1), want: CodeInvalid},
		{name: "put blob with empty replica", cmd: putBlob(b1, "n1", ""), want: CodeInvalid},
		{name: "put blob with negative size", cmd: func() Command {
			c := putBlob(b1, "n1")
			c.Blob.ZipSize = -1
			return c
		}(), want: CodeInvalid},
		{name: "update blob replicas", setup: withBlob,
			cmd: &fsmpb.UpdateBlobReplicasCmd{Header: hdr(""), BlobId: b1, Add: []string{"n4", "n3"}, Remove: []string{"n2", "n9"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if got := replicasOf(t, v, b1); !slices.Equal(got, []string{"n1", "n3", "n4"}) {
					t.Fatalf("replicas = %v", got)
				}
			}},
		{name: "remove every replica keeps the record", setup: withBlob,
			cmd: &fsmpb.UpdateBlobReplicasCmd{Header: hdr(""), BlobId: b1, Remove: []string{"n1", "n2"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if got := replicasOf(t, v, b1); len(got) != 0 {
					t.Fatalf("replicas = %v", got)
				}
			}},
		{name: "update replicas of missing blob", cmd: &fsmpb.UpdateBlobReplicasCmd{Header: hdr(""), BlobId: b1, Add: []string{"n1"}}, want: CodeNotFound},
		{name: "update replicas with empty id", setup: withBlob,
			cmd: &fsmpb.UpdateBlobReplicasCmd{Header: hdr(""), BlobId: b1, Add: []string{""}}, want: CodeInvalid},
		{name: "collect marks an unreferenced blob", setup: withBlob, cmd: collect(time.Minute),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if b := v.Blob(b1); b.UnreferencedSinceUnixNano == 0 {
					t.Fatalf("blob not marked: %v", b)
				}
			}},
		{name: "collect deletes after the grace period", setup: []Command{putBlob(b1, "n1"), collect(time.Second)}, cmd: collect(time.Second),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.Blob(b1) != nil {
					t.Fatal("blob record survived its grace period")
				}
			}},
		{name: "collect keeps a referenced blob", setup: []Command{accountCmd(testAccount), putBlob(b1, "n1"), fnWithBlob("fn", b1, false)},
			cmd: collect(time.Nanosecond),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if b := v.Blob(b1); b == nil || b.UnreferencedSinceUnixNano != 0 {
					t.Fatalf("referenced blob = %v", b)
				}
			}},
		{name: "collect without grace", cmd: collect(0), want: CodeInvalid},
	}
}

// TestBlobLifecycle walks a blob through upload, reference, a version
// keeping it alive, deletion and collection, checking the grace period
// and that a re-upload clears a pending mark.
func TestBlobLifecycle(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	b1, b2 := blobID(1), blobID(2)
	grace := 10 * time.Second // the replica clock advances 1 s per command

	r.must(t, putBlob(b1, "n1", "n2"))
	r.must(t, fnWithBlob("fn", b1, true)) // $LATEST and version 1 name b1
	r.must(t, putBlob(b2, "n1"))
	r.must(t, &fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "sha-2", BlobId: b2, CodeSize: 50})
	v := r.f.Store().View()
	if refs := v.ReferencedBlobs(); !refs[b1] || !refs[b2] || len(refs) != 2 {
		t.Fatalf("referenced = %v", refs)
	}
	if used := v.CodeStorageUsed(testAccount); used != 150 {
		t.Fatalf("code storage used = %d, want 150 (100 + 50, each blob once)", used)
	}
	if !v.AccountReferencesBlob(testAccount, b1) || v.AccountReferencesBlob("210987654321", b1) {
		t.Fatal("AccountReferencesBlob is wrong")
	}
	now := func() int64 { return r.clock.Add(time.Second).UnixNano() }
	if r.f.Store().View().CollectWouldChange(now(), int64(grace)) {
		t.Fatal("a collection would change blobs that are all referenced")
	}

	// Deleting version 1 leaves b1 unreferenced: marked, kept for the
	// grace period, then deleted.
	r.must(t, &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 1})
	r.must(t, collect(grace))
	marked := r.f.Store().View().Blob(b1).UnreferencedSinceUnixNano
	if marked == 0 {
		t.Fatal("unreferenced blob not marked")
	}
	for r.clock.UnixNano()+int64(time.Second)-marked < int64(grace) {
		r.must(t, collect(grace))
		if r.f.Store().View().Blob(b1) == nil {
			t.Fatalf("blob deleted %v after its mark, before the %v grace period", time.Duration(r.clock.UnixNano()-marked), grace)
		}
	}
	// A re-upload within the grace period clears the mark.
	r.must(t, putBlob(b1, "n3"))
	if b := r.f.Store().View().Blob(b1); b.UnreferencedSinceUnixNano != 0 || !slices.Equal(b.Replicas, []string{"n1", "n2", "n3"}) {
		t.Fatalf("re-uploaded blob = %v", b)
	}
	r.must(t, collect(grace))
	r.clock = r.clock.Add(grace)
	r.must(t, collect(grace))
	if r.f.Store().View().Blob(b1) != nil {
		t.Fatal("blob survived the grace period after its re-upload")
	}
	if r.f.Store().View().Blob(b2) == nil {
		t.Fatal("referenced blob b2 collected")
	}
	snapshotRoundTrip(t, r)

	// Deleting the function frees b2 the same way.
	r.must(t, &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn"})
	if !r.f.Store().View().CollectWouldChange(now(), int64(grace)) {
		t.Fatal("CollectWouldChange misses an unreferenced blob")
	}
	r.must(t, collect(grace))
	r.clock = r.clock.Add(grace)
	r.must(t, collect(grace))
	if n := len(r.f.Store().View().Blobs()); n != 0 {
		t.Fatalf("%d blob records left after deleting every function", n)
	}
	if r.f.Store().View().CollectWouldChange(now(), int64(grace)) {
		t.Fatal("CollectWouldChange with no blobs")
	}
	snapshotRoundTrip(t, r)
}

// randomBlobCommand draws a blob command for the property test over a
// few blob ids, or a code update of function fnName to one of them, so
// that collections meet referenced and unreferenced blobs.
func randomBlobCommand(rng *rand.Rand, h *fsmpb.Header, fnName string) Command {
	id := randomBlobIDs[rng.IntN(len(randomBlobIDs))]
	nodes := []string{"n0", "n1", "n2"}
	pick := func() []string {
		var out []string
		for _, n := range nodes {
			if rng.IntN(2) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	switch rng.IntN(4) {
	case 0:
		return &fsmpb.PutBlobCmd{Header: h, Blob: &fsmpb.Blob{Id: id, ZipSize: int64(rng.IntN(100)), Replicas: pick(), PlacementKey: "k"}}
	case 1:
		return &fsmpb.UpdateBlobReplicasCmd{Header: h, BlobId: id, Add: pick(), Remove: pick()}
	case 2:
		return &fsmpb.UpdateFunctionCodeCmd{Header: h, Name: fnName, CodeSha256: "sha-" + id[63:], BlobId: id, CodeSize: 10}
	}
	return &fsmpb.CollectBlobsCmd{Header: h, GraceNanos: int64(1+rng.IntN(5)) * int64(time.Second)}
}

var randomBlobIDs = []string{blobID(1), blobID(2), blobID(3)}
