package fsm

import (
	"regexp"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Code blob records (issue 7). Command types and snapshot record kinds
// 40-49 belong to them.
const (
	CmdPutBlob            CommandType = 40
	CmdUpdateBlobReplicas CommandType = 41
	CmdCollectBlobs       CommandType = 42
)

const (
	tableBlobs            = "blobs"
	recBlob    recordKind = 40
)

var blobIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func blobTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableBlobs, Indexes: map[string]*memdb.IndexSchema{
		indexID: {Name: indexID, Unique: true, Indexer: str("Id")},
	}}
}

func (a *applier) blob(id string) *fsmpb.Blob {
	raw, _ := a.txn.First(tableBlobs, indexID, id)
	if raw == nil {
		return nil
	}
	return raw.(*fsmpb.Blob)
}

func (a *applier) putBlob(c *fsmpb.PutBlobCmd) (*fsmpb.ApplyResult, error) {
	in := c.GetBlob()
	switch {
	case !blobIDRE.MatchString(in.GetId()):
		return nil, errorf(CodeInvalid, "blob id %q is not a hex SHA-256", in.GetId())
	case in.ZipSize < 0 || in.PackageSize < 0 || in.UnpackedSize < 0:
		return nil, errorf(CodeInvalid, "blob %s has a negative size", in.Id)
	case len(in.Replicas) == 0:
		return nil, errorf(CodeInvalid, "blob %s names no replica", in.Id)
	case slices.Contains(in.Replicas, ""):
		return nil, errorf(CodeInvalid, "blob %s names an empty replica id", in.Id)
	}
	b := &fsmpb.Blob{Id: in.Id, CreatedUnixNano: a.now()}
	if cur := a.blob(in.Id); cur != nil {
		b = proto.Clone(cur).(*fsmpb.Blob)
	}
	b.ZipSize, b.PackageSize, b.UnpackedSize, b.PackageSha256 = in.ZipSize, in.PackageSize, in.UnpackedSize, in.PackageSha256
	if in.PlacementKey != "" {
		b.PlacementKey = in.PlacementKey
	}
	b.Replicas = mergeReplicas(b.Replicas, in.Replicas, nil)
	b.UpdatedUnixNano = a.now()
	b.UnreferencedSinceUnixNano = 0
	if err := a.insert(tableBlobs, b); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{}, nil
}

func (a *applier) updateBlobReplicas(c *fsmpb.UpdateBlobReplicasCmd) (*fsmpb.ApplyResult, error) {
	cur := a.blob(c.BlobId)
	if cur == nil {
		return nil, errorf(CodeNotFound, "Blob not found: %s", c.BlobId)
	}
	if slices.Contains(c.Add, "") {
		return nil, errorf(CodeInvalid, "blob %s: empty replica id", c.BlobId)
	}
	b := proto.Clone(cur).(*fsmpb.Blob)
	b.Replicas = mergeReplicas(b.Replicas, c.Add, c.Remove)
	if err := a.insert(tableBlobs, b); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{}, nil
}

// mergeReplicas returns (cur ∪ add) \ remove, sorted and unique.
func mergeReplicas(cur, add, remove []string) []string {
	out := make([]string, 0, len(cur)+len(add))
	for _, id := range slices.Concat(cur, add) {
		if !slices.Contains(remove, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (a *applier) collectBlobs(c *fsmpb.CollectBlobsCmd) (*fsmpb.ApplyResult, error) {
	if c.GraceNanos <= 0 {
		return nil, errorf(CodeInvalid, "grace must be positive, got %d ns", c.GraceNanos)
	}
	v := &View{txn: a.txn}
	for _, ch := range v.collectPlan(a.now(), c.GraceNanos) {
		var err error
		switch {
		case ch.delete:
			err = a.txn.Delete(tableBlobs, ch.blob)
		default:
			b := proto.Clone(ch.blob).(*fsmpb.Blob)
			b.UnreferencedSinceUnixNano = ch.mark
			err = a.txn.Insert(tableBlobs, b)
		}
		if err != nil {
			return nil, errorf(CodeInvalid, "collect blob %s: %v", ch.blob.Id, err)
		}
	}
	return &fsmpb.ApplyResult{}, nil
}

// collectChange is one change a CollectBlobs pass makes: a new mark
// (0 unmarks) or a deletion.
type collectChange struct {
	blob   *fsmpb.Blob
	mark   int64
	delete bool
}

// collectPlan is what CollectBlobs does at leader time now with grace:
// referenced blobs lose their mark, unreferenced unmarked ones are marked
// now, and those marked at least grace ago are deleted.
func (v *View) collectPlan(now, grace int64) []collectChange {
	refs := v.ReferencedBlobs()
	var out []collectChange
	for _, b := range v.Blobs() {
		switch {
		case refs[b.Id]:
			if b.UnreferencedSinceUnixNano != 0 {
				out = append(out, collectChange{blob: b})
			}
		case b.UnreferencedSinceUnixNano == 0:
			out = append(out, collectChange{blob: b, mark: now})
		case now-b.UnreferencedSinceUnixNano >= grace:
			out = append(out, collectChange{blob: b, delete: true})
		}
	}
	return out
}

// CollectWouldChange reports whether a CollectBlobs command stamped at
// now with grace would change anything, so the leader proposes one only
// when it does.
func (v *View) CollectWouldChange(now, grace int64) bool {
	return len(v.collectPlan(now, grace)) > 0
}

// Blob returns the record of a code blob, or nil.
func (v *View) Blob(id string) *fsmpb.Blob { return first[fsmpb.Blob](v, tableBlobs, id) }

// Blobs returns every blob record ordered by id.
func (v *View) Blobs() []*fsmpb.Blob { return all[fsmpb.Blob](v, tableBlobs, indexID) }

// ReferencedBlobs returns the ids of the blobs that a function's $LATEST
// or a published version names. It scans every function and version.
func (v *View) ReferencedBlobs() map[string]bool {
	refs := map[string]bool{}
	for _, fn := range v.AllFunctions() {
		refs[fn.GetConfig().GetBlobId()] = true
	}
	for _, ver := range all[fsmpb.Version](v, tableVersions, indexID) {
		refs[ver.GetConfig().GetBlobId()] = true
	}
	delete(refs, "")
	return refs
}

// CodeStorageUsed is an account's code storage as Lambda counts
// TotalCodeSize: the zip sizes of the distinct packages its functions and
// versions reference.
func (v *View) CodeStorageUsed(accountID string) int64 {
	seen := map[string]bool{}
	var used int64
	add := func(cfg *fsmpb.FunctionConfig) {
		if !seen[cfg.GetBlobId()] {
			seen[cfg.GetBlobId()] = true
			used += cfg.GetCodeSize()
		}
	}
	for _, fn := range v.Functions(accountID, "", 0) {
		add(fn.Config)
		for _, ver := range v.Versions(accountID, fn.Name) {
			add(ver.Config)
		}
	}
	return used
}

// AccountReferencesBlob reports whether one of the account's functions or
// versions already names the blob (so storing it again costs nothing).
func (v *View) AccountReferencesBlob(accountID, blobID string) bool {
	for _, fn := range v.Functions(accountID, "", 0) {
		if fn.GetConfig().GetBlobId() == blobID {
			return true
		}
		for _, ver := range v.Versions(accountID, fn.Name) {
			if ver.GetConfig().GetBlobId() == blobID {
				return true
			}
		}
	}
	return false
}
