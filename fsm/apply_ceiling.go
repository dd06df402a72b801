package fsm

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// ceilingsTable holds one lease ceiling per account.
func ceilingsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableCeilings, Indexes: map[string]*memdb.IndexSchema{
		indexID: {Name: indexID, Unique: true, Indexer: str("AccountId")},
	}}
}

// LeaseCeiling returns an account's lease ceiling, or nil when none was set.
func (v *View) LeaseCeiling(accountID string) *fsmpb.LeaseCeiling {
	return first[fsmpb.LeaseCeiling](v, tableCeilings, accountID)
}

// setLeaseCeiling records the coordinator's ceiling for an account. It is
// refused (Precondition) when a coordinator of a later epoch set the
// current one, so a deposed coordinator cannot move it.
func (a *applier) setLeaseCeiling(c *fsmpb.SetLeaseCeilingCmd) (*fsmpb.ApplyResult, error) {
	if _, err := a.account(c.Header.AccountId); err != nil {
		return nil, err
	}
	if c.Ceiling < 0 {
		return nil, errorf(CodeInvalid, "lease ceiling %d is negative", c.Ceiling)
	}
	if raw, _ := a.txn.First(tableCeilings, indexID, c.Header.AccountId); raw != nil && raw.(*fsmpb.LeaseCeiling).Epoch > c.Epoch {
		return nil, errorf(CodePrecondition, "a coordinator of epoch %d set the ceiling; epoch %d may not", raw.(*fsmpb.LeaseCeiling).Epoch, c.Epoch)
	}
	if err := a.insert(tableCeilings, &fsmpb.LeaseCeiling{AccountId: c.Header.AccountId, Ceiling: c.Ceiling, Epoch: c.Epoch}); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{}, nil
}
