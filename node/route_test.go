package node

import (
	"slices"
	"testing"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/placement"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// viewWithNodes is a replica holding node records with these sizes.
func viewWithNodes(t *testing.T, mem map[string]int64) *fsm.View {
	t.Helper()
	f := fsm.New()
	i := uint64(0)
	for id, mb := range mem {
		i++
		data, err := fsm.Encode(&fsmpb.UpsertNodeCmd{Header: &fsmpb.Header{}, Node: &fsmpb.Node{Id: id, MemoryMb: mb}})
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(i, data); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	return f.Store().View()
}

func TestRingViewFollowsNodeRecords(t *testing.T) {
	v := newRingView(placement.DefaultConfig())
	if v.Ring().Len() != 0 {
		t.Fatal("a new view's ring is not empty")
	}
	three := viewWithNodes(t, map[string]int64{"a": 1024, "b": 2048, "c": 0})
	if !v.refresh(three) {
		t.Fatal("first records did not rebuild the ring")
	}
	first := v.Ring()
	got := first.Members()
	want := []placement.Member{{ID: "a", Weight: 1024}, {ID: "b", Weight: 2048}, {ID: "c", Weight: 1024}}
	if !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v (a record without a size counts as 1 GiB)", got, want)
	}
	if v.refresh(viewWithNodes(t, map[string]int64{"c": 0, "b": 2048, "a": 1024})) || v.Ring() != first {
		t.Fatal("the same records rebuilt the ring")
	}
	if !v.refresh(viewWithNodes(t, map[string]int64{"a": 1024, "b": 2048})) || v.Ring().Len() != 2 {
		t.Fatal("a removed node did not rebuild the ring")
	}
}

// TestPlacementKeyResolvesQualifiers: every qualifier of a version shares
// one home; the key names the executed version.
func TestPlacementKeyResolvesQualifiers(t *testing.T) {
	byAlias := &lambdaapi.InvokeRequest{AccountID: "123456789012", FunctionName: "f", Version: "3", InvokedARN: "arn:...:f:live"}
	byNumber := &lambdaapi.InvokeRequest{AccountID: "123456789012", FunctionName: "f", Version: "3", InvokedARN: "arn:...:f:3"}
	if placementKey(byAlias) != placementKey(byNumber) || placementKey(byAlias) != "123456789012/f/3" {
		t.Fatalf("keys %q and %q", placementKey(byAlias), placementKey(byNumber))
	}
}

func TestProvisionedShare(t *testing.T) {
	nodes := []string{"home", "second", "third"}
	tests := []struct {
		n    int
		want []int
	}{
		{5, []int{2, 2, 1}},
		{3, []int{1, 1, 1}},
		{1, []int{1, 0, 0}},
		{7, []int{3, 2, 2}},
	}
	for _, tt := range tests {
		var got []int
		total := 0
		for _, id := range nodes {
			s := provisionedShare(tt.n, nodes, id)
			got = append(got, s)
			total += s
		}
		if !slices.Equal(got, tt.want) || total != tt.n {
			t.Errorf("%d over %v: %v, want %v", tt.n, nodes, got, tt.want)
		}
	}
	if s := provisionedShare(5, nodes, "elsewhere"); s != 0 {
		t.Errorf("a node off the preference list got %d", s)
	}
	if s := provisionedShare(5, []string{"only"}, "only"); s != 5 {
		t.Errorf("a lone node got %d of 5", s)
	}
}

func TestProvisionedTargetResolvesAliases(t *testing.T) {
	f := fsm.New()
	acct := "123456789012"
	cmds := []fsm.Command{
		&fsmpb.CreateAccountCmd{Header: &fsmpb.Header{}, Account: &fsmpb.Account{Id: acct, ConcurrencyLimit: 1000, UnreservedMinimum: 100}},
		&fsmpb.CreateFunctionCmd{Header: &fsmpb.Header{AccountId: acct}, Name: "f", Publish: true, Config: &fsmpb.FunctionConfig{
			Runtime: "python3.11", Handler: "app.handler", MemoryMb: 128, TimeoutS: 3, EphemeralMb: 512, CodeSha256: "s", BlobId: "b"}},
		&fsmpb.CreateAliasCmd{Header: &fsmpb.Header{AccountId: acct}, Alias: &fsmpb.Alias{FunctionName: "f", Name: "live", FunctionVersion: "1"}},
	}
	for i, c := range cmds {
		data, _ := fsm.Encode(c)
		if res := f.Apply(uint64(i+1), data); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	v := f.Store().View()
	for _, q := range []string{"1", "live"} {
		req, ok := provisionedTarget(v, &fsmpb.ProvisionedConcurrencyConfig{AccountId: acct, FunctionName: "f", Qualifier: q})
		if !ok || req.Version != "1" || req.Revision != v.Version(acct, "f", 1).RevisionId {
			t.Fatalf("qualifier %s resolved to %+v (%v)", q, req, ok)
		}
	}
	for _, q := range []string{"2", "gone", "$LATEST"} {
		if _, ok := provisionedTarget(v, &fsmpb.ProvisionedConcurrencyConfig{AccountId: acct, FunctionName: "f", Qualifier: q}); ok {
			t.Fatalf("qualifier %s resolved", q)
		}
	}
}
