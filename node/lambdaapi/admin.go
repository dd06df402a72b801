package lambdaapi

import (
	"net/http"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Stoke's own admin API for tenants: accounts and access keys. Admin keys
// only. Access-key secrets are shown once, in the response that creates
// them, and kept sealed in the replicated store.

// Account limits a new account starts with (Lambda's defaults).
const (
	defaultConcurrencyLimit  = 1000
	defaultUnreservedMinimum = 100
	defaultCodeStorageLimit  = 75 << 30
)

// KeyGenerator makes account ids and access keys; the node provides it.
type KeyGenerator interface {
	NewAccountID() string
	NewAccessKey() (id, secret string)
	KeyContext(keyID string) string
}

type accountJSON struct {
	AccountID         string `json:"AccountId"`
	Name              string `json:"Name"`
	ConcurrencyLimit  int32  `json:"ConcurrencyLimit"`
	UnreservedMinimum int32  `json:"UnreservedMinimum"`
	CodeStorageLimit  int64  `json:"CodeStorageLimit"`
	Created           string `json:"Created"`
}

type keyJSON struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey,omitempty"`
	AccountID       string `json:"AccountId"`
	Status          string `json:"Status"`
	Admin           bool   `json:"Admin"`
	Description     string `json:"Description,omitempty"`
	Created         string `json:"Created"`
}

func toAccountJSON(a *fsmpb.Account) accountJSON {
	return accountJSON{AccountID: a.Id, Name: a.Name, ConcurrencyLimit: a.ConcurrencyLimit,
		UnreservedMinimum: a.UnreservedMinimum, CodeStorageLimit: a.CodeStorageLimit, Created: lastModified(a.CreatedUnixNano)}
}

func toKeyJSON(k *fsmpb.AccessKey) keyJSON {
	status := "Active"
	if k.Status == fsmpb.KeyStatus_KEY_STATUS_INACTIVE {
		status = "Inactive"
	}
	return keyJSON{AccessKeyID: k.Id, AccountID: k.AccountId, Status: status, Admin: k.Admin,
		Description: k.Description, Created: lastModified(k.CreatedUnixNano)}
}

func (h *Handler) listAccounts(req *request) (any, int, *Error) {
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := struct {
		Accounts []accountJSON `json:"Accounts"`
	}{Accounts: []accountJSON{}}
	for _, a := range v.Accounts() {
		out.Accounts = append(out.Accounts, toAccountJSON(a))
	}
	return out, http.StatusOK, nil
}

func (h *Handler) createAccount(req *request) (any, int, *Error) {
	var in struct {
		Name             string `json:"Name"`
		ConcurrencyLimit *int32 `json:"ConcurrencyLimit"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	if in.Name == "" || len(in.Name) > 64 {
		return nil, 0, invalidParameter("Name is required (1-64 characters)")
	}
	acct := &fsmpb.Account{Id: h.deps.Keys.NewAccountID(), Name: in.Name, ConcurrencyLimit: derefOr(in.ConcurrencyLimit, defaultConcurrencyLimit),
		UnreservedMinimum: defaultUnreservedMinimum, CodeStorageLimit: defaultCodeStorageLimit}
	if acct.ConcurrencyLimit < acct.UnreservedMinimum {
		acct.UnreservedMinimum = acct.ConcurrencyLimit
	}
	res, apiErr := h.apply(req, &fsmpb.CreateAccountCmd{Header: &fsmpb.Header{RequestId: req.id}, Account: acct})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return toAccountJSON(res.Account), http.StatusCreated, nil
}

func (h *Handler) listKeys(req *request) (any, int, *Error) {
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := struct {
		Keys []keyJSON `json:"Keys"`
	}{Keys: []keyJSON{}}
	for _, k := range v.AccessKeys(req.r.URL.Query().Get("AccountId")) {
		out.Keys = append(out.Keys, toKeyJSON(k))
	}
	return out, http.StatusOK, nil
}

func (h *Handler) createKey(req *request) (any, int, *Error) {
	var in struct {
		AccountID   string `json:"AccountId"`
		Admin       bool   `json:"Admin"`
		Description string `json:"Description"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	if in.AccountID == "" {
		in.AccountID = req.caller.AccountID
	}
	id, secret := h.deps.Keys.NewAccessKey()
	sealed, err := h.deps.Sealer.Seal([]byte(secret), h.deps.Keys.KeyContext(id))
	if err != nil {
		return nil, 0, serviceError("sealing the new key: %v", err)
	}
	res, apiErr := h.apply(req, &fsmpb.CreateAccessKeyCmd{Header: &fsmpb.Header{RequestId: req.id}, Key: &fsmpb.AccessKey{
		Id: id, SecretSealed: sealed, AccountId: in.AccountID, Admin: in.Admin, Description: in.Description,
	}})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := toKeyJSON(res.Key)
	out.SecretAccessKey = secret
	return out, http.StatusCreated, nil
}

func (h *Handler) revokeKey(req *request) (any, int, *Error) {
	id := req.r.PathValue("id")
	if id == req.caller.AccessKeyID {
		return nil, 0, invalidParameter("A key cannot revoke itself; use another admin key")
	}
	res, apiErr := h.apply(req, &fsmpb.SetAccessKeyStatusCmd{Header: &fsmpb.Header{RequestId: req.id}, KeyId: id,
		Status: fsmpb.KeyStatus_KEY_STATUS_INACTIVE})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return toKeyJSON(res.Key), http.StatusOK, nil
}
