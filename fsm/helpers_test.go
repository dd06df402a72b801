package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
)

const testAccount = "123456789012"

// replica is an FSM plus the log it has applied, for tests.
type replica struct {
	f     *FSM
	index uint64
	clock time.Time
	log   [][]byte
}

func newReplica() *replica {
	return &replica{f: New(), clock: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

// propose encodes, stamps and applies cmd the way the cluster's leader does.
func (r *replica) propose(t testing.TB, cmd Command) Result {
	t.Helper()
	data, err := Encode(cmd)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	r.clock = r.clock.Add(time.Second)
	data, err = Stamp(data, r.clock.UnixNano())
	if err != nil {
		t.Fatalf("stamp: %v", err)
	}
	r.index++
	r.log = append(r.log, data)
	return r.f.Apply(r.index, data)
}

func (r *replica) must(t testing.TB, cmd Command) *fsmpb.ApplyResult {
	t.Helper()
	res := r.propose(t, cmd)
	if res.Err != nil {
		t.Fatalf("%T: %v", cmd, res.Err)
	}
	return res.Value
}

func hdr(account string) *fsmpb.Header { return &fsmpb.Header{AccountId: account} }

func accountCmd(id string) *fsmpb.CreateAccountCmd {
	return &fsmpb.CreateAccountCmd{Header: hdr(""), Account: &fsmpb.Account{
		Id: id, Name: "acct-" + id, ConcurrencyLimit: 1000, UnreservedMinimum: 100, CodeStorageLimit: 75 << 30,
	}}
}

func testConfig(sha string) *fsmpb.FunctionConfig {
	return &fsmpb.FunctionConfig{
		Runtime: "python3.11", Handler: "app.handler", Role: "arn:aws:iam::123456789012:role/x",
		MemoryMb: 128, TimeoutS: 3, EphemeralMb: 512, CodeSha256: sha, CodeSize: 100,
		BlobId: "blob-" + sha, PackageType: "Zip", Architectures: []string{"x86_64"},
	}
}

func createFn(name string, publish bool) *fsmpb.CreateFunctionCmd {
	return &fsmpb.CreateFunctionCmd{Header: hdr(testAccount), Name: name, Config: testConfig("sha-1"), Publish: publish}
}

// snapshotRoundTrip checks that a replica restored from a snapshot of r holds
// exactly r's state.
func snapshotRoundTrip(t testing.TB, r *replica) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := r.f.Snapshot().WriteTo(&buf); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	restored := New()
	if err := restored.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if restored.Hash() != r.f.Hash() {
		t.Fatalf("restored state differs from the original")
	}
	if got, want := restored.Store().AppliedIndex(), r.f.Store().AppliedIndex(); got != want {
		t.Fatalf("restored applied index %d, want %d", got, want)
	}
	var again bytes.Buffer
	if _, err := restored.Snapshot().WriteTo(&again); err != nil {
		t.Fatalf("snapshot of restored: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatalf("snapshot of the restored replica is not byte-identical")
	}
}
