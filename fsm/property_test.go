package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// randomCommand draws a command over a small universe of names so that
// sequences hit conflicts, missing entities and stale revisions often.
func randomCommand(rng *rand.Rand, r *replica) Command {
	fnName := []string{"a", "b", "c"}[rng.IntN(3)]
	acct := []string{testAccount, testAccount, "210987654321"}[rng.IntN(3)]
	h := &fsmpb.Header{AccountId: acct}
	if rng.IntN(4) == 0 {
		h.RequestId = "req-" + strconv.Itoa(rng.IntN(20))
	}
	version := strconv.Itoa(1 + rng.IntN(4))
	staleOrCurrent := func() string {
		if rng.IntN(2) == 0 {
			return ""
		}
		if fn := r.f.Store().View().Function(acct, fnName); fn != nil && rng.IntN(2) == 0 {
			return fn.RevisionId
		}
		return "stale"
	}
	if rng.IntN(5) == 0 {
		return randomAsyncCommand(rng, h, fnName)
	}
	if rng.IntN(6) == 0 {
		return randomBlobCommand(rng, h, fnName)
	}
	switch rng.IntN(20) {
	case 0:
		return &fsmpb.CreateAccountCmd{Header: h, Account: &fsmpb.Account{Id: acct, ConcurrencyLimit: 100 + int32(rng.IntN(900)), UnreservedMinimum: 10}}
	case 1, 2:
		return &fsmpb.CreateFunctionCmd{Header: h, Name: fnName, Config: testConfig(fmt.Sprint("sha-", rng.IntN(3))), Publish: rng.IntN(2) == 0,
			Tags: map[string]string{"k": strconv.Itoa(rng.IntN(3))}}
	case 3:
		return &fsmpb.UpdateFunctionCodeCmd{Header: h, Name: fnName, CodeSha256: fmt.Sprint("sha-", rng.IntN(3)), BlobId: "b",
			ExpectedRevisionId: staleOrCurrent(), Publish: rng.IntN(3) == 0}
	case 4:
		return &fsmpb.UpdateFunctionConfigCmd{Header: h, Name: fnName, Fields: []string{"memory_mb", "description"},
			Config:             &fsmpb.FunctionConfig{MemoryMb: int32(128 * (1 + rng.IntN(3))), Description: strconv.Itoa(rng.IntN(5))},
			ExpectedRevisionId: staleOrCurrent()}
	case 5:
		return &fsmpb.DeleteFunctionCmd{Header: h, Name: fnName, Version: int64(rng.IntN(3))}
	case 6, 7:
		return &fsmpb.PublishVersionCmd{Header: h, Name: fnName, ExpectedRevisionId: staleOrCurrent()}
	case 8:
		w := map[string]float64{}
		if rng.IntN(2) == 0 {
			w[strconv.Itoa(1+rng.IntN(4))] = float64(rng.IntN(11)) / 10
		}
		return &fsmpb.CreateAliasCmd{Header: h, Alias: &fsmpb.Alias{FunctionName: fnName, Name: []string{"live", "beta"}[rng.IntN(2)],
			FunctionVersion: version, AdditionalVersionWeights: w}}
	case 9:
		return &fsmpb.UpdateAliasCmd{Header: h, FunctionName: fnName, Name: "live", FunctionVersion: version, SetWeights: true}
	case 10:
		return &fsmpb.DeleteAliasCmd{Header: h, FunctionName: fnName, Name: "live"}
	case 11:
		return &fsmpb.PutFunctionConcurrencyCmd{Header: h, Name: fnName, Reserved: int32(rng.IntN(600))}
	case 12:
		return &fsmpb.DeleteFunctionConcurrencyCmd{Header: h, Name: fnName}
	case 13:
		return &fsmpb.TagResourceCmd{Header: h, FunctionName: fnName, Tags: map[string]string{strconv.Itoa(rng.IntN(4)): "v"}}
	case 14:
		return &fsmpb.UntagResourceCmd{Header: h, FunctionName: fnName, Keys: []string{strconv.Itoa(rng.IntN(4))}}
	case 16:
		return &fsmpb.PutProvisionedConcurrencyCmd{Header: h, FunctionName: fnName, Qualifier: provisionedQualifier(rng), Requested: int32(rng.IntN(400))}
	case 17:
		return &fsmpb.DeleteProvisionedConcurrencyCmd{Header: h, FunctionName: fnName, Qualifier: provisionedQualifier(rng)}
	case 18:
		q := provisionedQualifier(rng)
		rev := "stale"
		if c := r.f.Store().View().ProvisionedConfig(acct, fnName, q); c != nil && rng.IntN(3) > 0 {
			rev = c.RevisionId
		}
		return &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: h, FunctionName: fnName, Qualifier: q, ExpectedRevisionId: rev,
			Status: []string{ProvisionedReady, ProvisionedFailed, "bogus"}[rng.IntN(3)], Allocated: int32(rng.IntN(5))}
	case 19:
		return &fsmpb.SetLeaseCeilingCmd{Header: h, Ceiling: int32(rng.IntN(60)) - 5, Epoch: uint64(rng.IntN(4))}
	default:
		if rng.IntN(2) == 0 {
			return &fsmpb.UpsertNodeCmd{Header: h, Node: &fsmpb.Node{Id: "n" + strconv.Itoa(rng.IntN(3)), MemoryMb: int64(rng.IntN(4096))}}
		}
		return &fsmpb.RemoveNodeCmd{Header: h, NodeId: "n" + strconv.Itoa(rng.IntN(3))}
	}
}

func provisionedQualifier(rng *rand.Rand) string {
	return []string{"1", "2", "live", "$LATEST"}[rng.IntN(4)]
}

// TestSnapshotPlusLogEqualsFullLog: for random command sequences, a replica
// restored from a snapshot taken mid-way and fed the rest of the log ends in
// exactly the state of a replica that applied the whole log.
func TestSnapshotPlusLogEqualsFullLog(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		full := newReplica()
		full.must(t, accountCmd(testAccount))
		n := 20 + rng.IntN(200)
		cut := rng.IntN(n)
		var snap bytes.Buffer
		var snapIndex uint64
		for i := range n {
			full.propose(t, randomCommand(rng, full))
			if i == cut {
				if _, err := full.f.Snapshot().WriteTo(&snap); err != nil {
					t.Fatal(err)
				}
				snapIndex = full.index
			}
		}
		replay := New()
		if err := replay.Restore(bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatalf("seed %d: restore: %v", seed, err)
		}
		for i := snapIndex; i < full.index; i++ {
			replay.Apply(i+1, full.log[i])
		}
		if replay.Hash() != full.f.Hash() {
			t.Fatalf("seed %d: replica from snapshot at %d + log differs from full replay (n=%d)", seed, snapIndex, n)
		}
		fresh := New()
		for i, e := range full.log {
			fresh.Apply(uint64(i+1), e)
		}
		if fresh.Hash() != full.f.Hash() {
			t.Fatalf("seed %d: replaying the log on a fresh replica is not deterministic", seed)
		}
	}
}

func TestUnknownCommandTypes(t *testing.T) {
	f := New()
	ignorable := []byte{byte(IgnorableFlag | 0x7E), 0x0A, 0x00}
	if err := Validate(ignorable); err == nil {
		t.Fatal("Validate accepted an unknown ignorable type")
	}
	if res := f.Apply(1, ignorable); res.Err == nil {
		t.Fatal("unknown ignorable entry applied without error")
	}
	if f.Store().AppliedIndex() != 1 {
		t.Fatal("skipped entry did not advance the applied index")
	}
	required := []byte{0x7E, 0x0A, 0x00}
	if err := Validate(required); err == nil {
		t.Fatal("Validate accepted an unknown required type")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Apply of an unknown required type did not halt")
		}
	}()
	f.Apply(2, required)
}

func TestCorruptSnapshotIsRefused(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	r.must(t, createFn("fn", true))
	var buf bytes.Buffer
	if _, err := r.f.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	target := New()
	target.Apply(1, mustEncode(t, accountCmd("210987654321")))
	before := target.Hash()
	for _, bad := range [][]byte{buf.Bytes()[:buf.Len()-1], buf.Bytes()[:buf.Len()/2], {0x42}, nil} {
		if err := target.Restore(bytes.NewReader(bad)); err == nil {
			t.Fatalf("restore of a %d-byte truncated stream succeeded", len(bad))
		}
		if target.Hash() != before {
			t.Fatal("a refused snapshot changed the state")
		}
	}
}

func mustEncode(t testing.TB, cmd Command) []byte {
	t.Helper()
	b, err := Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
