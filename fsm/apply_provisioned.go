package fsm

import (
	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Provisioned concurrency statuses, as Lambda reports them.
const (
	ProvisionedInProgress = "IN_PROGRESS"
	ProvisionedReady      = "READY"
	ProvisionedFailed     = "FAILED"
)

// provisionedTable indexes configs by (account, function, qualifier) and by
// function, so deleting a function drops its configs with the versions.
func provisionedTable(functionKey memdb.Indexer) *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableProvisioned, Indexes: map[string]*memdb.IndexSchema{
		indexID: {Name: indexID, Unique: true, Indexer: compound(
			str("AccountId"), str("FunctionName"), str("Qualifier"))},
		indexFunction: {Name: indexFunction, Indexer: functionKey},
	}}
}

// ProvisionedConfig returns one provisioned concurrency config, or nil.
func (v *View) ProvisionedConfig(accountID, function, qualifier string) *fsmpb.ProvisionedConcurrencyConfig {
	return first[fsmpb.ProvisionedConcurrencyConfig](v, tableProvisioned, accountID, function, qualifier)
}

// ProvisionedConfigs returns a function's provisioned concurrency configs
// ordered by qualifier.
func (v *View) ProvisionedConfigs(accountID, function string) []*fsmpb.ProvisionedConcurrencyConfig {
	return all[fsmpb.ProvisionedConcurrencyConfig](v, tableProvisioned, indexFunction, accountID, function)
}

// AllProvisionedConfigs returns every provisioned concurrency config of
// every account, ordered by account, function and qualifier.
func (v *View) AllProvisionedConfigs() []*fsmpb.ProvisionedConcurrencyConfig {
	return all[fsmpb.ProvisionedConcurrencyConfig](v, tableProvisioned, indexID)
}

// ProvisionedConcurrency sums the provisioned concurrency an account has
// asked for: of one function when function is set, else of the functions
// without reserved concurrency (the part of the unreserved pool it uses).
// The config (function, skipQualifier) is left out.
func (v *View) ProvisionedConcurrency(accountID, function, skipQualifier string) int64 {
	var sum int64
	reserved := map[string]bool{}
	// A prefix scan on the account id; the exact match below drops an
	// account whose id merely starts with this one.
	for _, c := range all[fsmpb.ProvisionedConcurrencyConfig](v, tableProvisioned, indexID+"_prefix", accountID) {
		if c.AccountId != accountID || (c.FunctionName == function && c.Qualifier == skipQualifier) {
			continue
		}
		switch {
		case function != "":
			if c.FunctionName != function {
				continue
			}
		default:
			has, seen := reserved[c.FunctionName]
			if !seen {
				fn := v.Function(accountID, c.FunctionName)
				has = fn != nil && fn.HasReservedConcurrency
				reserved[c.FunctionName] = has
			}
			if has {
				continue
			}
		}
		sum += int64(c.Requested)
	}
	return sum
}

// checkProvisionedQualifier refuses $LATEST and a qualifier that names no
// published version or alias of fn.
func (a *applier) checkProvisionedQualifier(fn *fsmpb.Function, qualifier string) error {
	switch {
	case qualifier == "":
		return errorf(CodeInvalid, "A qualifier (version or alias) is required for provisioned concurrency")
	case qualifier == VersionLatest:
		return errorf(CodeInvalid, "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
	}
	return a.checkQualifier(fn, qualifier)
}

func (a *applier) putProvisionedConcurrency(c *fsmpb.PutProvisionedConcurrencyCmd) (*fsmpb.ApplyResult, error) {
	acctID := c.Header.AccountId
	fn, err := a.function(acctID, c.FunctionName)
	if err != nil {
		return nil, err
	}
	acct, err := a.account(acctID)
	if err != nil {
		return nil, err
	}
	if err := a.checkProvisionedQualifier(fn, c.Qualifier); err != nil {
		return nil, err
	}
	if c.Requested < 1 {
		return nil, errorf(CodeInvalid, "ProvisionedConcurrentExecutions must be at least 1")
	}
	// Provisioned concurrency is drawn from the function's reserved
	// concurrency when it has some, else from the unreserved pool, which
	// must keep the account's unreserved minimum free.
	v := &View{txn: a.txn}
	if fn.HasReservedConcurrency {
		if total := v.ProvisionedConcurrency(acctID, fn.Name, c.Qualifier) + int64(c.Requested); total > int64(fn.ReservedConcurrency) {
			return nil, errorf(CodeLimitExceeded,
				"Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function: %d > %d",
				total, fn.ReservedConcurrency)
		}
	} else {
		room := int64(acct.ConcurrencyLimit-acct.UnreservedMinimum) - v.ReservedConcurrency(acctID, "")
		if total := v.ProvisionedConcurrency(acctID, "", "") + int64(c.Requested) - a.requestedOf(acctID, fn.Name, c.Qualifier); total > room {
			return nil, errorf(CodeLimitExceeded,
				"Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [%d] minus its minimum [%d].",
				int64(acct.ConcurrencyLimit)-v.ReservedConcurrency(acctID, ""), acct.UnreservedMinimum)
		}
	}
	cfg := &fsmpb.ProvisionedConcurrencyConfig{
		AccountId: acctID, FunctionName: fn.Name, Qualifier: c.Qualifier, Requested: c.Requested,
		Status: ProvisionedInProgress, LastModifiedUnixNano: a.now(), RevisionId: a.newRevisionID(),
	}
	if cur := v.ProvisionedConfig(acctID, fn.Name, c.Qualifier); cur != nil {
		// Sandboxes already allocated stay; the status restarts.
		cfg.Allocated = min(cur.Allocated, c.Requested)
	}
	if err := a.insert(tableProvisioned, cfg); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{}, nil
}

// requestedOf is what an existing config asks for (0 when absent).
func (a *applier) requestedOf(acctID, function, qualifier string) int64 {
	if cur := (&View{txn: a.txn}).ProvisionedConfig(acctID, function, qualifier); cur != nil {
		return int64(cur.Requested)
	}
	return 0
}

func (a *applier) deleteProvisionedConcurrency(c *fsmpb.DeleteProvisionedConcurrencyCmd) (*fsmpb.ApplyResult, error) {
	if _, err := a.function(c.Header.AccountId, c.FunctionName); err != nil {
		return nil, err
	}
	raw, _ := a.txn.First(tableProvisioned, indexID, c.Header.AccountId, c.FunctionName, c.Qualifier)
	if raw == nil {
		return nil, errorf(CodeNotFound, "No Provisioned Concurrency Config found for this function")
	}
	if err := a.txn.Delete(tableProvisioned, raw); err != nil {
		return nil, errorf(CodeInvalid, "delete provisioned concurrency: %v", err)
	}
	return &fsmpb.ApplyResult{}, nil
}

func (a *applier) setProvisionedConcurrencyStatus(c *fsmpb.SetProvisionedConcurrencyStatusCmd) (*fsmpb.ApplyResult, error) {
	raw, _ := a.txn.First(tableProvisioned, indexID, c.Header.AccountId, c.FunctionName, c.Qualifier)
	if raw == nil {
		return nil, errorf(CodeNotFound, "No Provisioned Concurrency Config found for this function")
	}
	cur := raw.(*fsmpb.ProvisionedConcurrencyConfig)
	if c.ExpectedRevisionId != cur.RevisionId {
		return nil, errorf(CodePrecondition, "the provisioned concurrency config changed since the status was computed")
	}
	switch c.Status {
	case ProvisionedInProgress, ProvisionedReady, ProvisionedFailed:
	default:
		return nil, errorf(CodeInvalid, "provisioned concurrency status %q is not valid", c.Status)
	}
	if c.Allocated < 0 || c.Allocated > cur.Requested {
		return nil, errorf(CodeInvalid, "allocated %d is outside [0, %d]", c.Allocated, cur.Requested)
	}
	cfg := proto.Clone(cur).(*fsmpb.ProvisionedConcurrencyConfig)
	cfg.Status, cfg.StatusReason, cfg.Allocated = c.Status, c.StatusReason, c.Allocated
	if err := a.insert(tableProvisioned, cfg); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{}, nil
}
