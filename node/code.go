package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// codeStore is the Lambda API's view of the blob store: archive rules as
// InvalidParameterValueException, and the account's code storage limit.
type codeStore struct {
	blobs *blob.Store
	meta  *Metadata
}

func (c *codeStore) Put(ctx context.Context, accountID string, zip []byte) (lambdaapi.CodeInfo, error) {
	v := c.meta.View()
	if acct := v.Account(accountID); acct != nil && acct.CodeStorageLimit > 0 {
		if used := codeStorageUsed(v, accountID); used+int64(len(zip)) > acct.CodeStorageLimit {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: the account stores %d bytes of code; this %d-byte package would pass its limit of %d",
				lambdaapi.ErrCodeStorageExceeded, used, len(zip), acct.CodeStorageLimit)
		}
	}
	m, err := c.blobs.Put(ctx, zip)
	if err != nil {
		var ce *codepkg.Error
		if errors.As(err, &ce) {
			return lambdaapi.CodeInfo{}, fmt.Errorf("%w: %s", lambdaapi.ErrInvalidCode, ce.Message)
		}
		return lambdaapi.CodeInfo{}, err
	}
	return lambdaapi.CodeInfo{BlobID: m.ZipSHA256Hex, CodeSha256: m.CodeSha256, Size: m.ZipSize, UnpackedSize: m.UnpackedSize}, nil
}

func (c *codeStore) OpenZip(_ context.Context, blobID string) (io.ReadCloser, int64, error) {
	rc, size, err := c.blobs.OpenZip(blobID)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil, 0, &lambdaapi.Error{Status: http.StatusNotFound, Type: "ResourceNotFoundException", Message: "Code package not found on this node"}
	}
	return rc, size, err
}

// codeStorageUsed sums the distinct code packages an account's functions
// and versions reference, as Lambda counts TotalCodeSize.
func codeStorageUsed(v *fsm.View, accountID string) int64 {
	seen := map[string]bool{}
	var used int64
	add := func(cfg *fsmpb.FunctionConfig) {
		if !seen[cfg.BlobId] {
			seen[cfg.BlobId] = true
			used += cfg.CodeSize
		}
	}
	for _, fn := range v.Functions(accountID, "", 0) {
		add(fn.Config)
		for _, ver := range v.Versions(accountID, fn.Name) {
			add(ver.Config)
		}
	}
	return used
}
