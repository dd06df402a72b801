package fsm

import (
	"github.com/stokehq/stoke/proto/fsmpb"
	"google.golang.org/protobuf/proto"
)

func (a *applier) account(id string) (*fsmpb.Account, error) {
	raw, _ := a.txn.First(tableAccounts, indexID, id)
	if raw == nil {
		return nil, errorf(CodeNotFound, "Account not found: %s", id)
	}
	return raw.(*fsmpb.Account), nil
}

func (a *applier) createAccount(c *fsmpb.CreateAccountCmd) (*fsmpb.ApplyResult, error) {
	acct := c.GetAccount()
	if acct.GetId() == "" {
		return nil, errorf(CodeInvalid, "account id is required")
	}
	if raw, _ := a.txn.First(tableAccounts, indexID, acct.Id); raw != nil {
		return nil, errorf(CodeConflict, "Account already exists: %s", acct.Id)
	}
	if acct.ConcurrencyLimit < 0 || acct.UnreservedMinimum < 0 || acct.UnreservedMinimum > acct.ConcurrencyLimit {
		return nil, errorf(CodeInvalid, "account concurrency limit %d with unreserved minimum %d is not valid",
			acct.ConcurrencyLimit, acct.UnreservedMinimum)
	}
	acct = proto.Clone(acct).(*fsmpb.Account)
	acct.CreatedUnixNano = a.now()
	if err := a.insert(tableAccounts, acct); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Account: acct}, nil
}

func (a *applier) updateAccount(c *fsmpb.UpdateAccountCmd) (*fsmpb.ApplyResult, error) {
	cur, err := a.account(c.AccountId)
	if err != nil {
		return nil, err
	}
	acct := proto.Clone(cur).(*fsmpb.Account)
	if c.ConcurrencyLimit > 0 {
		acct.ConcurrencyLimit = c.ConcurrencyLimit
	}
	if c.UnreservedMinimum > 0 {
		acct.UnreservedMinimum = c.UnreservedMinimum
	}
	if c.CodeStorageLimit > 0 {
		acct.CodeStorageLimit = c.CodeStorageLimit
	}
	reserved := (&View{txn: a.txn}).ReservedConcurrency(acct.Id, "")
	if acct.UnreservedMinimum > acct.ConcurrencyLimit ||
		reserved > int64(acct.ConcurrencyLimit-acct.UnreservedMinimum) {
		return nil, errorf(CodeLimitExceeded,
			"account concurrency limit %d leaves less than %d unreserved (%d reserved by functions)",
			acct.ConcurrencyLimit, acct.UnreservedMinimum, reserved)
	}
	if err := a.insert(tableAccounts, acct); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Account: acct}, nil
}

func (a *applier) createAccessKey(c *fsmpb.CreateAccessKeyCmd) (*fsmpb.ApplyResult, error) {
	key := c.GetKey()
	if key.GetId() == "" || len(key.GetSecretSealed()) == 0 {
		return nil, errorf(CodeInvalid, "access key id and secret are required")
	}
	if _, err := a.account(key.AccountId); err != nil {
		return nil, err
	}
	if raw, _ := a.txn.First(tableAccessKeys, indexID, key.Id); raw != nil {
		return nil, errorf(CodeConflict, "Access key already exists: %s", key.Id)
	}
	key = proto.Clone(key).(*fsmpb.AccessKey)
	key.CreatedUnixNano = a.now()
	if key.Status == fsmpb.KeyStatus_KEY_STATUS_UNSPECIFIED {
		key.Status = fsmpb.KeyStatus_KEY_STATUS_ACTIVE
	}
	if err := a.insert(tableAccessKeys, key); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Key: key}, nil
}

func (a *applier) setAccessKeyStatus(c *fsmpb.SetAccessKeyStatusCmd) (*fsmpb.ApplyResult, error) {
	raw, _ := a.txn.First(tableAccessKeys, indexID, c.KeyId)
	if raw == nil {
		return nil, errorf(CodeNotFound, "Access key not found: %s", c.KeyId)
	}
	if c.Status != fsmpb.KeyStatus_KEY_STATUS_ACTIVE && c.Status != fsmpb.KeyStatus_KEY_STATUS_INACTIVE {
		return nil, errorf(CodeInvalid, "access key status %s is not valid", c.Status)
	}
	key := proto.Clone(raw.(*fsmpb.AccessKey)).(*fsmpb.AccessKey)
	key.Status = c.Status
	if err := a.insert(tableAccessKeys, key); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Key: key}, nil
}

func (a *applier) upsertNode(c *fsmpb.UpsertNodeCmd) (*fsmpb.ApplyResult, error) {
	n := c.GetNode()
	if n.GetId() == "" {
		return nil, errorf(CodeInvalid, "node id is required")
	}
	n = proto.Clone(n).(*fsmpb.Node)
	if raw, _ := a.txn.First(tableNodes, indexID, n.Id); raw != nil {
		n.JoinedUnixNano = raw.(*fsmpb.Node).JoinedUnixNano
	} else {
		n.JoinedUnixNano = a.now()
	}
	if err := a.insert(tableNodes, n); err != nil {
		return nil, err
	}
	return &fsmpb.ApplyResult{Node: n}, nil
}

func (a *applier) removeNode(c *fsmpb.RemoveNodeCmd) (*fsmpb.ApplyResult, error) {
	raw, _ := a.txn.First(tableNodes, indexID, c.NodeId)
	if raw == nil {
		// Removing an absent node is a no-op: the reconcile loop may retry.
		return &fsmpb.ApplyResult{}, nil
	}
	if err := a.txn.Delete(tableNodes, raw); err != nil {
		return nil, errorf(CodeInvalid, "remove node: %v", err)
	}
	return &fsmpb.ApplyResult{Node: raw.(*fsmpb.Node)}, nil
}
