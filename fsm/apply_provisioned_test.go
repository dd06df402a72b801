package fsm

import (
	"time"

	"testing"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func ceilingCmd(ceiling int32, epoch uint64) *fsmpb.SetLeaseCeilingCmd {
	return &fsmpb.SetLeaseCeilingCmd{Header: hdr(testAccount), Ceiling: ceiling, Epoch: epoch}
}

func putPC(fn, qualifier string, n int32) *fsmpb.PutProvisionedConcurrencyCmd {
	return &fsmpb.PutProvisionedConcurrencyCmd{Header: hdr(testAccount), FunctionName: fn, Qualifier: qualifier, Requested: n}
}

// provisionedSetup is an account with function fn published as version 1
// and an alias "live" to it.
var provisionedSetup = []Command{
	accountCmd(testAccount), createFn("fn", true),
	&fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{FunctionName: "fn", Name: "live", FunctionVersion: "1"}},
}

func withSetup(cmds ...Command) []Command {
	return append(append([]Command{}, provisionedSetup...), cmds...)
}

// provisionedApplyCases join TestApplyCommands' table (same element type),
// so each case ends with its snapshot → restore → equal check and the
// command types count as covered.
var provisionedApplyCases = []struct {
	name  string
	setup []Command
	cmd   Command
	want  Code
	check func(t *testing.T, v *View, res *fsmpb.ApplyResult)
}{
	{name: "put provisioned on a version", setup: provisionedSetup, cmd: putPC("fn", "1", 5),
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			c := v.ProvisionedConfig(testAccount, "fn", "1")
			if c == nil || c.Requested != 5 || c.Status != ProvisionedInProgress || c.RevisionId == "" || c.LastModifiedUnixNano == 0 {
				t.Fatalf("config = %v", c)
			}
			if got := len(v.AllProvisionedConfigs()); got != 1 {
				t.Fatalf("%d configs", got)
			}
		}},
	{name: "put provisioned on an alias", setup: provisionedSetup, cmd: putPC("fn", "live", 2),
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if c := v.ProvisionedConfig(testAccount, "fn", "live"); c == nil || c.Requested != 2 {
				t.Fatalf("config = %v", c)
			}
		}},
	{name: "put provisioned on $LATEST", setup: provisionedSetup, cmd: putPC("fn", "$LATEST", 1), want: CodeInvalid},
	{name: "put provisioned without qualifier", setup: provisionedSetup, cmd: putPC("fn", "", 1), want: CodeInvalid},
	{name: "put provisioned on a missing version", setup: provisionedSetup, cmd: putPC("fn", "7", 1), want: CodeNotFound},
	{name: "put provisioned on a missing alias", setup: provisionedSetup, cmd: putPC("fn", "nope", 1), want: CodeNotFound},
	{name: "put provisioned on a missing function", setup: provisionedSetup, cmd: putPC("other", "1", 1), want: CodeNotFound},
	{name: "put provisioned of zero", setup: provisionedSetup, cmd: putPC("fn", "1", 0), want: CodeInvalid},
	{name: "put provisioned past reserved concurrency",
		setup: withSetup(&fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 4}, putPC("fn", "live", 3)),
		cmd:   putPC("fn", "1", 2), want: CodeLimitExceeded},
	{name: "put provisioned within reserved concurrency",
		setup: withSetup(&fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "fn", Reserved: 4}, putPC("fn", "live", 3)),
		cmd:   putPC("fn", "live", 4)},
	// 1000 limit - 100 unreserved minimum = 900 may be provisioned.
	{name: "put provisioned past the unreserved pool", setup: withSetup(putPC("fn", "live", 600)), cmd: putPC("fn", "1", 301), want: CodeLimitExceeded},
	{name: "replacing a config counts it once", setup: withSetup(putPC("fn", "1", 600)), cmd: putPC("fn", "1", 900)},
	{name: "put provisioned again restarts the status",
		setup: withSetup(putPC("fn", "1", 5), &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1",
			Status: ProvisionedReady, Allocated: 5, ExpectedRevisionId: revisionAfterPut}),
		cmd: putPC("fn", "1", 3),
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			c := v.ProvisionedConfig(testAccount, "fn", "1")
			if c.Status != ProvisionedInProgress || c.Requested != 3 || c.Allocated != 3 || c.RevisionId == revisionAfterPut {
				t.Fatalf("config = %v", c)
			}
		}},
	{name: "set provisioned status", setup: withSetup(putPC("fn", "1", 5)),
		cmd: &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1",
			Status: ProvisionedReady, Allocated: 5, ExpectedRevisionId: revisionAfterPut},
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if c := v.ProvisionedConfig(testAccount, "fn", "1"); c.Status != ProvisionedReady || c.Allocated != 5 {
				t.Fatalf("config = %v", c)
			}
		}},
	{name: "set provisioned status of a replaced config", setup: withSetup(putPC("fn", "1", 5)),
		cmd: &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1",
			Status: ProvisionedReady, Allocated: 5, ExpectedRevisionId: "older"}, want: CodePrecondition},
	{name: "set provisioned status to nonsense", setup: withSetup(putPC("fn", "1", 5)),
		cmd: &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1",
			Status: "DONE", ExpectedRevisionId: revisionAfterPut}, want: CodeInvalid},
	{name: "set provisioned allocation past the request", setup: withSetup(putPC("fn", "1", 5)),
		cmd: &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1",
			Status: ProvisionedReady, Allocated: 6, ExpectedRevisionId: revisionAfterPut}, want: CodeInvalid},
	{name: "set status of a missing config", setup: provisionedSetup,
		cmd:  &fsmpb.SetProvisionedConcurrencyStatusCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1", Status: ProvisionedReady},
		want: CodeNotFound},
	// "+1" parses as 1 but is not how version 1 is named: a config under
	// it would never match an invocation of the version.
	{name: "provisioned on a signed version number", setup: provisionedSetup, cmd: putPC("fn", "+1", 1), want: CodeNotFound},
	{name: "delete provisioned", setup: withSetup(putPC("fn", "1", 5)),
		cmd: &fsmpb.DeleteProvisionedConcurrencyCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1"},
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if v.ProvisionedConfig(testAccount, "fn", "1") != nil {
				t.Fatal("config still present")
			}
		}},
	{name: "delete a missing provisioned config", setup: provisionedSetup,
		cmd: &fsmpb.DeleteProvisionedConcurrencyCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1"}, want: CodeNotFound},
	{name: "deleting an alias drops its config", setup: withSetup(putPC("fn", "live", 2), putPC("fn", "1", 1)),
		cmd: &fsmpb.DeleteAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "live"},
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if v.ProvisionedConfig(testAccount, "fn", "live") != nil || v.ProvisionedConfig(testAccount, "fn", "1") == nil {
				t.Fatalf("configs left: %v", v.AllProvisionedConfigs())
			}
		}},
	{name: "set a lease ceiling", setup: provisionedSetup, cmd: ceilingCmd(40, 3),
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if c := v.LeaseCeiling(testAccount); c == nil || c.Ceiling != 40 || c.Epoch != 3 {
				t.Fatalf("ceiling = %v", c)
			}
		}},
	{name: "a later epoch moves the ceiling", setup: withSetup(ceilingCmd(40, 3)), cmd: ceilingCmd(10, 4),
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if c := v.LeaseCeiling(testAccount); c.Ceiling != 10 || c.Epoch != 4 {
				t.Fatalf("ceiling = %v", c)
			}
		}},
	{name: "an earlier epoch may not move the ceiling", setup: withSetup(ceilingCmd(40, 3)), cmd: ceilingCmd(90, 2), want: CodePrecondition},
	{name: "negative lease ceiling", setup: provisionedSetup, cmd: ceilingCmd(-1, 3), want: CodeInvalid},
	{name: "lease ceiling of a missing account", cmd: ceilingCmd(5, 1), want: CodeNotFound},
	{name: "deleting a function drops its configs", setup: withSetup(putPC("fn", "live", 2), putPC("fn", "1", 1)),
		cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn"},
		check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
			if n := len(v.AllProvisionedConfigs()); n != 0 {
				t.Fatalf("%d configs left", n)
			}
		}},
}

// revisionAfterPut is the revision id of a config Put right after
// provisionedSetup on a fresh replica, as the table cases above do:
// revision ids derive from the entry (index, leader time, request id), and
// a fresh replica stamps the same times in the same order.
var revisionAfterPut = func() string {
	r := newReplica()
	for _, c := range append(append([]Command{}, provisionedSetup...), putPC("fn", "1", 5)) {
		data, err := Encode(c)
		if err == nil {
			r.clock = r.clock.Add(time.Second)
			data, err = Stamp(data, r.clock.UnixNano())
		}
		if err != nil {
			panic(err)
		}
		r.index++
		if res := r.f.Apply(r.index, data); res.Err != nil {
			panic(res.Err)
		}
	}
	return r.f.Store().View().ProvisionedConfig(testAccount, "fn", "1").RevisionId
}()

func TestProvisionedConcurrencySums(t *testing.T) {
	r := newReplica()
	r.must(t, accountCmd(testAccount))
	r.must(t, createFn("a", true))
	r.must(t, createFn("b", true))
	r.must(t, &fsmpb.PutFunctionConcurrencyCmd{Header: hdr(testAccount), Name: "b", Reserved: 10})
	r.must(t, putPC("a", "1", 3))
	r.must(t, putPC("b", "1", 4))
	v := r.f.Store().View()
	if got := v.ProvisionedConcurrency(testAccount, "", ""); got != 3 {
		t.Fatalf("unreserved provisioned = %d, want 3 (b draws on its reservation)", got)
	}
	if got := v.ProvisionedConcurrency(testAccount, "b", ""); got != 4 {
		t.Fatalf("b provisioned = %d, want 4", got)
	}
	if got := v.ProvisionedConcurrency(testAccount, "b", "1"); got != 0 {
		t.Fatalf("b provisioned without its config = %d, want 0", got)
	}
	if got := len(v.ProvisionedConfigs(testAccount, "a")); got != 1 {
		t.Fatalf("a has %d configs", got)
	}
}
