package fsm

import (
	"testing"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func TestApplyCommands(t *testing.T) {
	base := []Command{accountCmd(testAccount)}
	withFn := append(append([]Command{}, base...), createFn("fn", false))
	withV1 := append(append([]Command{}, base...), createFn("fn", true))
	withV2 := append(append([]Command{}, withV1...),
		&fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "sha-2", BlobId: "blob-2", CodeSize: 7, Publish: true})
	withAlias := append(append([]Command{}, withV2...),
		&fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{FunctionName: "fn", Name: "live", FunctionVersion: "1",
			AdditionalVersionWeights: map[string]float64{"2": 0.1}}})

	tests := []struct {
		name  string
		setup []Command
		cmd   Command
		want  Code
		check func(t *testing.T, v *View, res *fsmpb.ApplyResult)
	}{
		{name: "create account", cmd: accountCmd("210987654321"), check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if a := v.Account("210987654321"); a == nil || a.ConcurrencyLimit != 1000 || a.CreatedUnixNano == 0 {
				t.Fatalf("account = %v", a)
			}
		}},
		{name: "create account twice", setup: base, cmd: accountCmd(testAccount), want: CodeConflict},
		{name: "create account without id", cmd: accountCmd(""), want: CodeInvalid},
		{name: "update account limit", setup: base,
			cmd: &fsmpb.UpdateAccountCmd{Header: hdr(""), AccountId: testAccount, ConcurrencyLimit: 50, UnreservedMinimum: 10},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if a := v.Account(testAccount); a.ConcurrencyLimit != 50 || a.UnreservedMinimum != 10 {
					t.Fatalf("account = %v", a)
				}
			}},
		{name: "update account below reserved", setup: append(append([]Command{}, withFn...),
			&fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 500}),
			cmd:  &fsmpb.UpdateAccountCmd{Header: hdr(""), AccountId: testAccount, ConcurrencyLimit: 550},
			want: CodeLimitExceeded},
		{name: "create access key", setup: base,
			cmd: &fsmpb.CreateAccessKeyCmd{Header: hdr(""), Key: &fsmpb.AccessKey{Id: "AKIA1", SecretSealed: []byte("s"), AccountId: testAccount}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if k := v.AccessKey("AKIA1"); k == nil || k.Status != fsmpb.KeyStatus_KEY_STATUS_ACTIVE {
					t.Fatalf("key = %v", k)
				}
				if got := len(v.AccessKeys(testAccount)); got != 1 {
					t.Fatalf("account has %d keys, want 1", got)
				}
			}},
		{name: "create access key for missing account",
			cmd:  &fsmpb.CreateAccessKeyCmd{Header: hdr(""), Key: &fsmpb.AccessKey{Id: "AKIA1", SecretSealed: []byte("s"), AccountId: "999999999999"}},
			want: CodeNotFound},
		{name: "deactivate access key", setup: append(append([]Command{}, base...),
			&fsmpb.CreateAccessKeyCmd{Header: hdr(""), Key: &fsmpb.AccessKey{Id: "AKIA1", SecretSealed: []byte("s"), AccountId: testAccount}}),
			cmd: &fsmpb.SetAccessKeyStatusCmd{Header: hdr(""), KeyId: "AKIA1", Status: fsmpb.KeyStatus_KEY_STATUS_INACTIVE},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if k := v.AccessKey("AKIA1"); k.Status != fsmpb.KeyStatus_KEY_STATUS_INACTIVE {
					t.Fatalf("status = %v", k.Status)
				}
			}},
		{name: "status of missing key", cmd: &fsmpb.SetAccessKeyStatusCmd{Header: hdr(""), KeyId: "nope", Status: fsmpb.KeyStatus_KEY_STATUS_ACTIVE}, want: CodeNotFound},
		{name: "create function", setup: base, cmd: createFn("fn", false), check: func(t *testing.T, v *View, res *fsmpb.ApplyResult) {
			fn := v.Function(testAccount, "fn")
			if fn == nil || fn.State != StateActive || fn.RevisionId == "" || fn.LastModifiedUnixNano == 0 || fn.LastVersion != 0 {
				t.Fatalf("function = %v", fn)
			}
			if res.Function.RevisionId != fn.RevisionId {
				t.Fatalf("result revision %q, stored %q", res.Function.RevisionId, fn.RevisionId)
			}
		}},
		{name: "create function and publish", setup: base, cmd: createFn("fn", true), check: func(t *testing.T, v *View, res *fsmpb.ApplyResult) {
			if res.Version.GetVersion() != 1 || v.Version(testAccount, "fn", 1) == nil {
				t.Fatalf("version 1 not published: %v", res)
			}
		}},
		{name: "create existing function", setup: withFn, cmd: createFn("fn", false), want: CodeConflict},
		{name: "create function in missing account", cmd: createFn("fn", false), want: CodeNotFound},
		{name: "create function with bad memory", setup: base, cmd: &fsmpb.CreateFunctionCmd{Header: hdr(testAccount), Name: "fn",
			Config: func() *fsmpb.FunctionConfig { c := testConfig("s"); c.MemoryMb = 64; return c }()}, want: CodeInvalid},
		{name: "update code", setup: withFn,
			cmd: &fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "sha-2", BlobId: "blob-2", CodeSize: 9},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if c := v.Function(testAccount, "fn").Config; c.CodeSha256 != "sha-2" || c.BlobId != "blob-2" || c.Handler != "app.handler" {
					t.Fatalf("config = %v", c)
				}
			}},
		{name: "update code with stale revision", setup: withFn,
			cmd:  &fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "x", BlobId: "x", ExpectedRevisionId: "stale"},
			want: CodePrecondition},
		{name: "update code of missing function", setup: base,
			cmd: &fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "nope", CodeSha256: "x", BlobId: "x"}, want: CodeNotFound},
		{name: "update config merges named fields only", setup: withFn,
			cmd: &fsmpb.UpdateFunctionConfigCmd{Header: hdr(testAccount), Name: "fn", Fields: []string{"memory_mb", "environment"},
				Config: &fsmpb.FunctionConfig{MemoryMb: 1769, EnvironmentSealed: []byte("sealed"), EnvironmentSize: 12, Handler: "ignored.handler"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				c := v.Function(testAccount, "fn").Config
				if c.MemoryMb != 1769 || string(c.EnvironmentSealed) != "sealed" || c.EnvironmentSize != 12 || c.Handler != "app.handler" || c.CodeSha256 != "sha-1" {
					t.Fatalf("config = %v", c)
				}
			}},
		{name: "update config cannot touch code", setup: withFn,
			cmd:  &fsmpb.UpdateFunctionConfigCmd{Header: hdr(testAccount), Name: "fn", Fields: []string{"code_sha256"}, Config: &fsmpb.FunctionConfig{CodeSha256: "evil"}},
			want: CodeInvalid},
		{name: "update config out of range", setup: withFn,
			cmd:  &fsmpb.UpdateFunctionConfigCmd{Header: hdr(testAccount), Name: "fn", Fields: []string{"timeout_s"}, Config: &fsmpb.FunctionConfig{TimeoutS: 901}},
			want: CodeInvalid},
		{name: "delete function removes versions and aliases", setup: withAlias,
			cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.Function(testAccount, "fn") != nil || len(v.Versions(testAccount, "fn")) != 0 || len(v.Aliases(testAccount, "fn")) != 0 {
					t.Fatal("function remnants left behind")
				}
			}},
		{name: "delete version referenced by alias", setup: withAlias,
			cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 2}, want: CodeConflict},
		{name: "delete one version", setup: withV2, cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 1},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.Version(testAccount, "fn", 1) != nil || v.Version(testAccount, "fn", 2) == nil || v.Function(testAccount, "fn") == nil {
					t.Fatal("wrong versions left")
				}
			}},
		{name: "delete missing version", setup: withV1, cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 9}, want: CodeNotFound},
		{name: "publish version", setup: withFn, cmd: &fsmpb.PublishVersionCmd{Header: hdr(testAccount), Name: "fn", Description: "first"},
			check: func(t *testing.T, v *View, res *fsmpb.ApplyResult) {
				ver := v.Version(testAccount, "fn", 1)
				if ver == nil || ver.Description != "first" || ver.Config.CodeSha256 != "sha-1" || res.Version.Version != 1 {
					t.Fatalf("version = %v", ver)
				}
			}},
		{name: "publish unchanged returns latest version", setup: withV1, cmd: &fsmpb.PublishVersionCmd{Header: hdr(testAccount), Name: "fn"},
			check: func(t *testing.T, v *View, res *fsmpb.ApplyResult) {
				if res.Version.Version != 1 || len(v.Versions(testAccount, "fn")) != 1 {
					t.Fatalf("published %v; versions %d", res.Version, len(v.Versions(testAccount, "fn")))
				}
			}},
		{name: "publish with wrong code sha", setup: withFn,
			cmd: &fsmpb.PublishVersionCmd{Header: hdr(testAccount), Name: "fn", ExpectedCodeSha256: "other"}, want: CodePrecondition},
		{name: "publish with stale revision", setup: withFn,
			cmd: &fsmpb.PublishVersionCmd{Header: hdr(testAccount), Name: "fn", ExpectedRevisionId: "stale"}, want: CodePrecondition},
		{name: "version numbers are never reused", setup: append(append([]Command{}, withV2...),
			&fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 2},
			&fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "sha-3", BlobId: "blob-3"}),
			cmd: &fsmpb.PublishVersionCmd{Header: hdr(testAccount), Name: "fn"},
			check: func(t *testing.T, _ *View, res *fsmpb.ApplyResult) {
				if res.Version.Version != 3 {
					t.Fatalf("published version %d, want 3", res.Version.Version)
				}
			}},
		{name: "create alias", setup: withV2, cmd: &fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{
			FunctionName: "fn", Name: "live", FunctionVersion: "1", AdditionalVersionWeights: map[string]float64{"2": 0.25}}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				al := v.Alias(testAccount, "fn", "live")
				if al == nil || al.RevisionId == "" || al.AdditionalVersionWeights["2"] != 0.25 {
					t.Fatalf("alias = %v", al)
				}
			}},
		{name: "create alias to missing version", setup: withV1, cmd: &fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{
			FunctionName: "fn", Name: "live", FunctionVersion: "7"}}, want: CodeNotFound},
		{name: "create alias weighting $LATEST", setup: withV2, cmd: &fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{
			FunctionName: "fn", Name: "live", FunctionVersion: "$LATEST", AdditionalVersionWeights: map[string]float64{"2": 0.5}}}, want: CodeInvalid},
		{name: "create alias with weight above 1", setup: withV2, cmd: &fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{
			FunctionName: "fn", Name: "live", FunctionVersion: "1", AdditionalVersionWeights: map[string]float64{"2": 1.5}}}, want: CodeInvalid},
		{name: "create existing alias", setup: withAlias, cmd: &fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{
			FunctionName: "fn", Name: "live", FunctionVersion: "1"}}, want: CodeConflict},
		{name: "update alias", setup: withAlias, cmd: &fsmpb.UpdateAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "live",
			FunctionVersion: "2", SetWeights: true},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				al := v.Alias(testAccount, "fn", "live")
				if al.FunctionVersion != "2" || len(al.AdditionalVersionWeights) != 0 {
					t.Fatalf("alias = %v", al)
				}
			}},
		{name: "update alias with stale revision", setup: withAlias, cmd: &fsmpb.UpdateAliasCmd{Header: hdr(testAccount), FunctionName: "fn",
			Name: "live", FunctionVersion: "2", ExpectedRevisionId: "stale"}, want: CodePrecondition},
		{name: "update missing alias", setup: withV1, cmd: &fsmpb.UpdateAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "nope"}, want: CodeNotFound},
		{name: "delete alias", setup: withAlias, cmd: &fsmpb.DeleteAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "live"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.Alias(testAccount, "fn", "live") != nil {
					t.Fatal("alias still present")
				}
			}},
		{name: "delete missing alias succeeds", setup: withV1, cmd: &fsmpb.DeleteAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "nope"}},
		{name: "delete alias of missing function", setup: base, cmd: &fsmpb.DeleteAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "x"}, want: CodeNotFound},
		{name: "put concurrency", setup: withFn, cmd: &fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 900},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if fn := v.Function(testAccount, "fn"); !fn.HasReservedConcurrency || fn.ReservedConcurrency != 900 {
					t.Fatalf("function = %v", fn)
				}
			}},
		{name: "put concurrency past unreserved minimum", setup: withFn,
			cmd: &fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 901}, want: CodeLimitExceeded},
		{name: "put zero concurrency", setup: withFn, cmd: &fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 0},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if fn := v.Function(testAccount, "fn"); !fn.HasReservedConcurrency || fn.ReservedConcurrency != 0 {
					t.Fatalf("function = %v", fn)
				}
			}},
		{name: "delete concurrency", setup: append(append([]Command{}, withFn...),
			&fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 5}),
			cmd: &fsmpb.DeleteFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if fn := v.Function(testAccount, "fn"); fn.HasReservedConcurrency {
					t.Fatalf("function = %v", fn)
				}
			}},
		{name: "tag resource", setup: withFn, cmd: &fsmpb.TagResourceCmd{Header: hdr(testAccount), FunctionName: "fn", Tags: map[string]string{"team": "a", "env": "dev"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if tags := v.Function(testAccount, "fn").Tags; tags["team"] != "a" || tags["env"] != "dev" {
					t.Fatalf("tags = %v", tags)
				}
			}},
		{name: "untag resource", setup: append(append([]Command{}, withFn...),
			&fsmpb.TagResourceCmd{Header: hdr(testAccount), FunctionName: "fn", Tags: map[string]string{"team": "a", "env": "dev"}}),
			cmd: &fsmpb.UntagResourceCmd{Header: hdr(testAccount), FunctionName: "fn", Keys: []string{"team"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if tags := v.Function(testAccount, "fn").Tags; len(tags) != 1 || tags["env"] != "dev" {
					t.Fatalf("tags = %v", tags)
				}
			}},
		{name: "tag missing function", setup: base, cmd: &fsmpb.TagResourceCmd{Header: hdr(testAccount), FunctionName: "x", Tags: map[string]string{"a": "b"}}, want: CodeNotFound},
		{name: "upsert node keeps join time", setup: []Command{&fsmpb.UpsertNodeCmd{Header: hdr(""), Node: &fsmpb.Node{Id: "n1", Role: "server"}}},
			cmd: &fsmpb.UpsertNodeCmd{Header: hdr(""), Node: &fsmpb.Node{Id: "n1", Role: "server", HttpAddr: "127.0.0.1:9000"}},
			check: func(t *testing.T, v *View, res *fsmpb.ApplyResult) {
				n := v.Node("n1")
				firstApply := newReplica().clock.Add(time.Second).UnixNano()
				if n.HttpAddr != "127.0.0.1:9000" || n.JoinedUnixNano != firstApply || res.Node.JoinedUnixNano != firstApply {
					t.Fatalf("node = %v", n)
				}
			}},
		{name: "remove node", setup: []Command{&fsmpb.UpsertNodeCmd{Header: hdr(""), Node: &fsmpb.Node{Id: "n1"}}},
			cmd: &fsmpb.RemoveNodeCmd{Header: hdr(""), NodeId: "n1"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.Node("n1") != nil {
					t.Fatal("node still present")
				}
			}},
		{name: "remove absent node is a no-op", cmd: &fsmpb.RemoveNodeCmd{Header: hdr(""), NodeId: "ghost"}},
	}
	tests = append(tests, blobApplyCases()...)
	tests = append(tests, provisionedApplyCases...)
	tests = append(tests, asyncApplyCases()...)

	covered := map[CommandType]bool{}
	for _, tc := range tests {
		ct, err := TypeOf(tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		covered[ct] = true
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica()
			for _, c := range tc.setup {
				r.must(t, c)
			}
			res := r.propose(t, tc.cmd)
			if got := CodeOf(res.Err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, res.Err, tc.want)
			}
			if tc.want != CodeOK && res.Value != nil {
				t.Fatalf("refused command returned a value: %v", res.Value)
			}
			if tc.check != nil {
				tc.check(t, r.f.Store().View(), res.Value)
			}
			snapshotRoundTrip(t, r)
		})
	}
	for ct := range commands {
		if !covered[ct] {
			t.Errorf("command type %s has no table case", ct)
		}
	}
}

func TestRefusedCommandChangesNoEntity(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	r.must(t, createFn("fn", true))
	v := r.f.Store().View()
	before := v.Function(testAccount, "fn")
	res := r.propose(t, &fsmpb.UpdateFunctionConfigCmd{Header: hdr(testAccount), Name: "fn",
		Fields: []string{"memory_mb", "timeout_s"}, Config: &fsmpb.FunctionConfig{MemoryMb: 256, TimeoutS: 0}})
	if CodeOf(res.Err) != CodeInvalid {
		t.Fatalf("err = %v, want Invalid", res.Err)
	}
	after := r.f.Store().View().Function(testAccount, "fn")
	if after.RevisionId != before.RevisionId || after.Config.MemoryMb != 128 {
		t.Fatalf("refused update changed the function: %v", after)
	}
}

func TestRequestIDMakesRetriesIdempotent(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	r.must(t, createFn("fn", false))
	pub := &fsmpb.PublishVersionCmd{Header: &fsmpb.Header{AccountId: testAccount, RequestId: "req-1"}, Name: "fn"}
	first := r.must(t, pub)
	r.must(t, &fsmpb.UpdateFunctionCodeCmd{Header: hdr(testAccount), Name: "fn", CodeSha256: "sha-2", BlobId: "b2"})
	// The retried publish must not publish the new code as version 2.
	again := r.must(t, pub)
	if again.Version.GetVersion() != first.Version.GetVersion() {
		t.Fatalf("retry published version %d, first %d", again.Version.GetVersion(), first.Version.GetVersion())
	}
	if n := len(r.f.Store().View().Versions(testAccount, "fn")); n != 1 {
		t.Fatalf("%d versions after a retried publish, want 1", n)
	}
	// A retried refusal is refused the same way.
	bad := &fsmpb.CreateFunctionCmd{Header: &fsmpb.Header{AccountId: testAccount, RequestId: "req-2"}, Name: "fn", Config: testConfig("x")}
	e1, e2 := r.propose(t, bad).Err, r.propose(t, bad).Err
	if CodeOf(e1) != CodeConflict || CodeOf(e2) != CodeConflict || e1.Error() != e2.Error() {
		t.Fatalf("retried refusal: %v then %v", e1, e2)
	}
	snapshotRoundTrip(t, r)
}

func TestRequestRecordsArePruned(t *testing.T) {
	r := newReplica()
	r.must(t, &fsmpb.CreateAccountCmd{Header: &fsmpb.Header{RequestId: "old"}, Account: accountCmd(testAccount).Account})
	r.clock = r.clock.Add(requestRetention + 2*requestPruneStep)
	r.must(t, &fsmpb.UpsertNodeCmd{Header: &fsmpb.Header{RequestId: "new"}, Node: &fsmpb.Node{Id: "n1"}})
	v := r.f.Store().View()
	if v.Request("old") != nil {
		t.Fatal("request record older than the retention survived")
	}
	if v.Request("new") == nil {
		t.Fatal("fresh request record was pruned")
	}
}

func TestListFunctionsPaginates(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	r.must(t, accountCmd("210987654321"))
	for _, name := range []string{"c", "a", "e", "b", "d"} {
		r.must(t, createFn(name, false))
	}
	r.must(t, &fsmpb.CreateFunctionCmd{Header: hdr("210987654321"), Name: "other", Config: testConfig("s")})
	v := r.f.Store().View()
	var got []string
	marker := ""
	for {
		page := v.Functions(testAccount, marker, 2)
		for _, fn := range page {
			got = append(got, fn.Name)
		}
		if len(page) < 2 {
			break
		}
		marker = page[len(page)-1].Name
	}
	if want := "a,b,c,d,e"; join(got) != want {
		t.Fatalf("pages = %s, want %s", join(got), want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
