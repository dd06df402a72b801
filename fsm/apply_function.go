package fsm

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Limits of a function configuration the state machine itself enforces. The
// API layer checks the same limits first, with Lambda's messages; these keep
// the replicated state valid whatever the proposer.
const (
	MinMemoryMB    = 128
	MaxMemoryMB    = 10240
	MinTimeoutS    = 1
	MaxTimeoutS    = 900
	MinEphemeralMB = 512
	MaxEphemeralMB = 10240
	MaxTags        = 50
)

// Function states and update statuses, as Lambda names them.
const (
	StateActive       = "Active"
	StatusSuccessful  = "Successful"
	VersionLatest     = "$LATEST"
	maxFunctionName   = 64
	maxAliasNameBytes = 128
)

// codeFields are FunctionConfig fields only code updates may change.
var codeFields = map[string]bool{
	"code_sha256": true, "code_size": true, "blob_id": true,
	"architectures": true, "package_type": true,
}

func checkConfig(cfg *fsmpb.FunctionConfig) error {
	switch {
	case cfg == nil:
		return errorf(CodeInvalid, "function configuration is required")
	case cfg.MemoryMb < MinMemoryMB || cfg.MemoryMb > MaxMemoryMB:
		return errorf(CodeInvalid, "MemorySize %d is outside [%d, %d]", cfg.MemoryMb, MinMemoryMB, MaxMemoryMB)
	case cfg.TimeoutS < MinTimeoutS || cfg.TimeoutS > MaxTimeoutS:
		return errorf(CodeInvalid, "Timeout %d is outside [%d, %d]", cfg.TimeoutS, MinTimeoutS, MaxTimeoutS)
	case cfg.EphemeralMb < MinEphemeralMB || cfg.EphemeralMb > MaxEphemeralMB:
		return errorf(CodeInvalid, "EphemeralStorage %d is outside [%d, %d]", cfg.EphemeralMb, MinEphemeralMB, MaxEphemeralMB)
	case cfg.CodeSha256 == "" || cfg.BlobId == "":
		return errorf(CodeInvalid, "function code is required")
	}
	return nil
}

func (a *applier) function(accountID, name string) (*fsmpb.Function, error) {
	raw, _ := a.txn.First(tableFunctions, indexID, accountID, name)
	if raw == nil {
		return nil, errorf(CodeNotFound, "Function not found: %s", name)
	}
	return raw.(*fsmpb.Function), nil
}

// touch stamps a changed function with a new revision and modification time.
func (a *applier) touch(fn *fsmpb.Function) {
	fn.RevisionId = a.newRevisionID()
	fn.LastModifiedUnixNano = a.now()
	fn.LastUpdateStatus = StatusSuccessful
}

func checkRevision(expected, actual string) error {
	if expected != "" && expected != actual {
		return errorf(CodePrecondition,
			"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	return nil
}

func (a *applier) createFunction(c *fsmpb.CreateFunctionCmd) (*fsmpb.ApplyResult, error) {
	acctID := c.Header.AccountId
	if c.Name == "" || len(c.Name) > maxFunctionName {
		return nil, errorf(CodeInvalid, "function name must be 1 to %d characters", maxFunctionName)
	}
	if _, err := a.account(acctID); err != nil {
		return nil, err
	}
	if err := checkConfig(c.Config); err != nil {
		return nil, err
	}
	if len(c.Tags) > MaxTags {
		return nil, errorf(CodeInvalid, "a function may have at most %d tags", MaxTags)
	}
	if raw, _ := a.txn.First(tableFunctions, indexID, acctID, c.Name); raw != nil {
		return nil, errorf(CodeConflict, "Function already exist: %s", c.Name)
	}
	fn := &fsmpb.Function{
		AccountId:       acctID,
		Name:            c.Name,
		Config:          proto.Clone(c.Config).(*fsmpb.FunctionConfig),
		State:           StateActive,
		Tags:            c.Tags,
		CreatedUnixNano: a.now(),
	}
	a.touch(fn)
	if !c.Publish {
		if err := a.insert(tableFunctions, fn); err != nil {
			return nil, err
		}
		return &fsmpb.ApplyResult{Function: fn}, nil
	}
	return a.publish(fn, "")
}

func (a *applier) updateFunctionCode(c *fsmpb.UpdateFunctionCodeCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.Name)
	if err != nil {
		return nil, err
	}
	if err := checkRevision(c.ExpectedRevisionId, cur.RevisionId); err != nil {
		return nil, err
	}
	if c.CodeSha256 == "" || c.BlobId == "" {
		return nil, errorf(CodeInvalid, "function code is required")
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	fn.Config.CodeSha256 = c.CodeSha256
	fn.Config.CodeSize = c.CodeSize
	fn.Config.BlobId = c.BlobId
	if len(c.Architectures) > 0 {
		fn.Config.Architectures = c.Architectures
	}
	a.touch(fn)
	if c.Publish {
		return a.publish(fn, "")
	}
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

func (a *applier) updateFunctionConfig(c *fsmpb.UpdateFunctionConfigCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.Name)
	if err != nil {
		return nil, err
	}
	if err := checkRevision(c.ExpectedRevisionId, cur.RevisionId); err != nil {
		return nil, err
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	if err := mergeConfig(fn.Config, c.Config, c.Fields); err != nil {
		return nil, err
	}
	if err := checkConfig(fn.Config); err != nil {
		return nil, err
	}
	a.touch(fn)
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

// mergeConfig copies the named fields of src into dst. "environment" names
// both the sealed variables and their clear size.
func mergeConfig(dst, src *fsmpb.FunctionConfig, fields []string) error {
	if src == nil {
		src = &fsmpb.FunctionConfig{}
	}
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	desc := d.Descriptor().Fields()
	for _, name := range fields {
		names := []string{name}
		if name == "environment" {
			names = []string{"environment_sealed", "environment_size"}
		}
		for _, n := range names {
			fd := desc.ByName(protoreflect.Name(n))
			if fd == nil || codeFields[n] {
				return errorf(CodeInvalid, "configuration field %q cannot be updated", name)
			}
			if s.Has(fd) {
				d.Set(fd, s.Get(fd))
			} else {
				d.Clear(fd)
			}
		}
	}
	return nil
}

func (a *applier) deleteFunction(c *fsmpb.DeleteFunctionCmd) (*fsmpb.ApplyResult, error) {
	acctID := c.Header.AccountId
	fn, err := a.function(acctID, c.Name)
	if err != nil {
		return nil, err
	}
	if c.Version != 0 {
		return a.deleteVersion(fn, c.Version)
	}
	// A function created again under the same name starts without them.
	for _, table := range []string{tableVersions, tableAliases, tableProvisioned, tableEventConfigs} {
		if _, err := a.txn.DeleteAll(table, indexFunction, acctID, c.Name); err != nil {
			return nil, errorf(CodeInvalid, "delete %s: %v", table, err)
		}
	}
	if err := a.txn.Delete(tableFunctions, fn); err != nil {
		return nil, errorf(CodeInvalid, "delete function: %v", err)
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

func (a *applier) putFunctionConcurrency(c *fsmpb.PutFunctionConcurrencyCmd) (*fsmpb.ApplyResult, error) {
	acctID := c.Header.AccountId
	cur, err := a.function(acctID, c.Name)
	if err != nil {
		return nil, err
	}
	acct, err := a.account(acctID)
	if err != nil {
		return nil, err
	}
	if c.Reserved < 0 {
		return nil, errorf(CodeInvalid, "ReservedConcurrentExecutions must not be negative")
	}
	others := (&View{txn: a.txn}).ReservedConcurrency(acctID, c.Name)
	if others+int64(c.Reserved) > int64(acct.ConcurrencyLimit-acct.UnreservedMinimum) {
		return nil, errorf(CodeLimitExceeded,
			"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].",
			acct.UnreservedMinimum)
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	fn.ReservedConcurrency = c.Reserved
	fn.HasReservedConcurrency = true
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

func (a *applier) deleteFunctionConcurrency(c *fsmpb.DeleteFunctionConcurrencyCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.Name)
	if err != nil {
		return nil, err
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	fn.ReservedConcurrency = 0
	fn.HasReservedConcurrency = false
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

func (a *applier) tagResource(c *fsmpb.TagResourceCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.FunctionName)
	if err != nil {
		return nil, err
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	if fn.Tags == nil {
		fn.Tags = map[string]string{}
	}
	for k, v := range c.Tags {
		fn.Tags[k] = v
	}
	if len(fn.Tags) > MaxTags {
		return nil, errorf(CodeInvalid, "a function may have at most %d tags", MaxTags)
	}
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}

func (a *applier) untagResource(c *fsmpb.UntagResourceCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.FunctionName)
	if err != nil {
		return nil, err
	}
	fn := proto.Clone(cur).(*fsmpb.Function)
	for _, k := range c.Keys {
		delete(fn.Tags, k)
	}
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn}, nil
}
