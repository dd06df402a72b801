package fsm

import (
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func (a *applier) publishVersion(c *fsmpb.PublishVersionCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.function(c.Header.AccountId, c.Name)
	if err != nil {
		return nil, err
	}
	if c.ExpectedCodeSha256 != "" && c.ExpectedCodeSha256 != cur.Config.CodeSha256 {
		return nil, errorf(CodePrecondition,
			"CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try again with the current CodeSHA256.",
			c.ExpectedCodeSha256, cur.Config.CodeSha256)
	}
	if err := checkRevision(c.ExpectedRevisionId, cur.RevisionId); err != nil {
		return nil, err
	}
	return a.publish(proto.Clone(cur).(*fsmpb.Function), c.Description)
}

// publish freezes fn's $LATEST into a new version and stores fn. As in
// Lambda, nothing new is published when neither code nor configuration
// changed since the newest version: that version is returned instead.
func (a *applier) publish(fn *fsmpb.Function, description string) (*fsmpb.ApplyResult, error) {
	if fn.LastVersion > 0 {
		versions := (&View{txn: a.txn}).Versions(fn.AccountId, fn.Name)
		if n := len(versions); n > 0 && proto.Equal(versions[n-1].Config, fn.Config) {
			if err := a.insert(tableFunctions, fn); err != nil {
				return nil, err
			}
			return &fsmpb.ApplyResult{Function: fn, Version: versions[n-1]}, nil
		}
	}
	fn.LastVersion++
	v := &fsmpb.Version{
		AccountId:            fn.AccountId,
		FunctionName:         fn.Name,
		Version:              fn.LastVersion,
		Config:               proto.Clone(fn.Config).(*fsmpb.FunctionConfig),
		RevisionId:           a.newRevisionID(),
		LastModifiedUnixNano: a.now(),
		Description:          description,
	}
	a.touch(fn)
	if err := a.insert(tableFunctions, fn); err != nil {
		return nil, err
	}
	if err := a.insert(tableVersions, v); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn, Version: v}, nil
}

func (a *applier) deleteVersion(fn *fsmpb.Function, version int64) (*fsmpb.ApplyResult, error) {
	raw, _ := a.txn.First(tableVersions, indexID, fn.AccountId, fn.Name, version)
	if raw == nil {
		return nil, errorf(CodeNotFound, "Function not found: %s:%d", fn.Name, version)
	}
	var users []string
	for _, al := range (&View{txn: a.txn}).Aliases(fn.AccountId, fn.Name) {
		if aliasReferences(al, version) {
			users = append(users, al.Name)
		}
	}
	if len(users) > 0 {
		return nil, errorf(CodeConflict,
			"Unable to delete version because the following aliases reference it: [%s]", strings.Join(users, ", "))
	}
	if err := a.txn.Delete(tableVersions, raw); err != nil {
		return nil, errorf(CodeInvalid, "delete version: %v", err)
	}
	if err := a.dropQualifierConfigs(fn.AccountId, fn.Name, strconv.FormatInt(version, 10)); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Function: fn, Version: raw.(*fsmpb.Version)}, nil
}

func aliasReferences(al *fsmpb.Alias, version int64) bool {
	v := strconv.FormatInt(version, 10)
	if al.FunctionVersion == v {
		return true
	}
	_, ok := al.AdditionalVersionWeights[v]
	return ok
}

// checkAliasTarget validates an alias's primary version and routing weights
// against the function's published versions.
func (a *applier) checkAliasTarget(fn *fsmpb.Function, primary string, weights map[string]float64) error {
	if primary == "" {
		return errorf(CodeInvalid, "FunctionVersion is required")
	}
	if err := a.versionExists(fn, primary); err != nil {
		return err
	}
	if len(weights) == 0 {
		return nil
	}
	if primary == VersionLatest {
		return errorf(CodeInvalid, "$LATEST is not supported for an alias pointing to more than 1 version")
	}
	if len(weights) > 1 {
		return errorf(CodeInvalid, "Number of items in AdditionalVersionWeights must be at most 1")
	}
	keys := make([]string, 0, len(weights))
	for k := range weights {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sum float64
	for _, k := range keys {
		w := weights[k]
		if k == primary {
			return errorf(CodeInvalid, "Invalid function version %s. Function version %s is already included in routing configuration.", k, k)
		}
		if k == VersionLatest {
			return errorf(CodeInvalid, "$LATEST is not supported for an alias pointing to more than 1 version")
		}
		if w < 0 || w > 1 || w != w {
			return errorf(CodeInvalid, "Invalid weight %v for version %s: weights must be between 0.0 and 1.0", w, k)
		}
		sum += w
		if err := a.versionExists(fn, k); err != nil {
			return err
		}
	}
	if sum > 1 {
		return errorf(CodeInvalid, "The sum of AdditionalVersionWeights must not exceed 1.0")
	}
	return nil
}

func (a *applier) versionExists(fn *fsmpb.Function, version string) error {
	if version == VersionLatest {
		return nil
	}
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil || n <= 0 {
		return errorf(CodeInvalid, "Invalid function version %q", version)
	}
	if raw, _ := a.txn.First(tableVersions, indexID, fn.AccountId, fn.Name, n); raw == nil {
		return errorf(CodeNotFound, "Function not found: %s:%s", fn.Name, version)
	}
	return nil
}

func (a *applier) createAlias(c *fsmpb.CreateAliasCmd) (*fsmpb.ApplyResult, error) {
	in := c.GetAlias()
	acctID := c.Header.AccountId
	fn, err := a.function(acctID, in.GetFunctionName())
	if err != nil {
		return nil, err
	}
	if in.Name == "" || len(in.Name) > maxAliasNameBytes {
		return nil, errorf(CodeInvalid, "alias name must be 1 to %d characters", maxAliasNameBytes)
	}
	if raw, _ := a.txn.First(tableAliases, indexID, acctID, fn.Name, in.Name); raw != nil {
		return nil, errorf(CodeConflict, "Alias already exists: %s:%s", fn.Name, in.Name)
	}
	if err := a.checkAliasTarget(fn, in.FunctionVersion, in.AdditionalVersionWeights); err != nil {
		return nil, err
	}
	al := proto.Clone(in).(*fsmpb.Alias)
	al.AccountId = acctID
	al.RevisionId = a.newRevisionID()
	if err := a.insert(tableAliases, al); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Alias: al}, nil
}

func (a *applier) alias(acctID, function, name string) (*fsmpb.Function, *fsmpb.Alias, error) {
	fn, err := a.function(acctID, function)
	if err != nil {
		return nil, nil, err
	}
	raw, _ := a.txn.First(tableAliases, indexID, acctID, function, name)
	if raw == nil {
		return fn, nil, errorf(CodeNotFound, "Alias not found: %s:%s", function, name)
	}
	return fn, raw.(*fsmpb.Alias), nil
}

func (a *applier) updateAlias(c *fsmpb.UpdateAliasCmd) (*fsmpb.ApplyResult, error) {
	fn, cur, err := a.alias(c.Header.AccountId, c.FunctionName, c.Name)
	if err != nil {
		return nil, err
	}
	if err := checkRevision(c.ExpectedRevisionId, cur.RevisionId); err != nil {
		return nil, err
	}
	al := proto.Clone(cur).(*fsmpb.Alias)
	if c.FunctionVersion != "" {
		al.FunctionVersion = c.FunctionVersion
	}
	if c.SetDescription {
		al.Description = c.Description
	}
	if c.SetWeights {
		al.AdditionalVersionWeights = c.AdditionalVersionWeights
	}
	if err := a.checkAliasTarget(fn, al.FunctionVersion, al.AdditionalVersionWeights); err != nil {
		return nil, err
	}
	al.RevisionId = a.newRevisionID()
	if err := a.insert(tableAliases, al); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Alias: al}, nil
}

// deleteAlias removes an alias. Like Lambda's DeleteAlias, deleting an alias
// that does not exist succeeds; the function must exist.
func (a *applier) deleteAlias(c *fsmpb.DeleteAliasCmd) (*fsmpb.ApplyResult, error) {
	if _, err := a.function(c.Header.AccountId, c.FunctionName); err != nil {
		return nil, err
	}
	raw, _ := a.txn.First(tableAliases, indexID, c.Header.AccountId, c.FunctionName, c.Name)
	if raw == nil {
		return &fsmpb.ApplyResult{}, nil
	}
	al := raw.(*fsmpb.Alias)
	if err := a.txn.Delete(tableAliases, al); err != nil {
		return nil, errorf(CodeInvalid, "delete alias: %v", err)
	}
	if err := a.dropQualifierConfigs(al.AccountId, al.FunctionName, al.Name); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Alias: al}, nil
}

// dropQualifierConfigs removes what was configured for a deleted version
// or alias (its event-invoke and provisioned concurrency configurations),
// so one created again under the same qualifier starts without them.
func (a *applier) dropQualifierConfigs(acctID, function, qualifier string) error {
	for _, table := range []string{tableEventConfigs, tableProvisioned} {
		if raw, _ := a.txn.First(table, indexID, acctID, function, qualifier); raw != nil {
			if err := a.txn.Delete(table, raw); err != nil {
				return errorf(CodeInvalid, "delete %s: %v", table, err)
			}
		}
	}
	return nil
}
