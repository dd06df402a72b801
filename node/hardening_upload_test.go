package node

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// longZipPath returns a relative path of n bytes whose components stay
// within NAME_MAX, so that only the whole path's length is at fault.
func longZipPath(n int) string {
	var b strings.Builder
	for n-b.Len() > 255 {
		b.WriteString(strings.Repeat("d", 200) + "/")
	}
	b.WriteString(strings.Repeat("f", n-b.Len()))
	return b.String()
}

// TestUploadRefusesPathTooLongToUnpack is issue 13, item 6: a zip entry
// with a 4,001-byte path was accepted, then every invoke failed. The upload
// itself must now be refused, 400 InvalidParameterValueException, with a
// message that says which rule.
func TestUploadRefusesPathTooLongToUnpack(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	z := zipFiles(t, map[string][]byte{"app.py": readFile(t, "testdata/fns/python/app.py"), longZipPath(4001): []byte("x")}, nil)
	_, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("deep"), Runtime: types.RuntimePython311,
		Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: z}})
	if !isErr[*types.InvalidParameterValueException](err) {
		t.Fatalf("CreateFunction with a 4,001-byte entry path: %v; want InvalidParameterValueException", err)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("status of the refusal: %v; want 400", err)
	}
	if !strings.Contains(err.Error(), "has a path of 4001 bytes") {
		t.Fatalf("refusal %q does not say what is wrong", err)
	}
	if strings.Contains(err.Error(), a.cfg.DataDir) {
		t.Fatalf("refusal %q names the node's data dir", err)
	}
}

// TestInvokeErrorNeverNamesTheDataDir is issue 13, item 6: a platform
// failure to prepare a function's code reached the tenant as a
// ServiceException quoting the host's data-dir path. The code tree's place
// is taken by a file, so that the node cannot unpack it; the invoke must
// fail as a ServiceException that says what failed, with no host path.
func TestInvokeErrorNeverNamesTheDataDir(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	z := pythonZip(t, "v1")
	if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("blocked"), Runtime: types.RuntimePython311,
		Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: z}}); err != nil {
		t.Fatal(err)
	}
	m, err := a.Blobs().Manifest(blob.IDOf(z))
	if err != nil {
		t.Fatal(err)
	}
	unpacked := a.cfg.Code.UnpackedDir
	if unpacked == "" {
		unpacked = filepath.Join(a.cfg.DataDir, "code", "unpacked")
	}
	tree := filepath.Join(unpacked, m.TarZstSHA256Hex)
	if err := os.WriteFile(tree, []byte("not a directory"), 0o600); err != nil {
		t.Fatalf("blocking the code tree (was it unpacked at upload?): %v", err)
	}
	_, err = c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("blocked"), Payload: []byte(`{}`)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ServiceException" {
		t.Fatalf("invoke with unusable code: %v; want a ServiceException", err)
	}
	dataDir, _ := filepath.Abs(a.cfg.DataDir)
	for _, leak := range []string{a.cfg.DataDir, dataDir, "unpacked", m.TarZstSHA256Hex} {
		if strings.Contains(ae.ErrorMessage(), leak) {
			t.Fatalf("the tenant's error %q names %q", ae.ErrorMessage(), leak)
		}
	}
	if !strings.Contains(ae.ErrorMessage(), "the function's code could not be made available") {
		t.Fatalf("the tenant's error %q does not say what failed", ae.ErrorMessage())
	}
}

// TestPlatformErrorsNameNoHostPath runs every class of pool failure, each
// wrapping an error that names a host path, through the translation to
// what the tenant sees: invoke responses and provisioned-concurrency
// status reasons.
func TestPlatformErrorsNameNoHostPath(t *testing.T) {
	const host = "/srv/stoke-data/code/unpacked/abc"
	pathErr := &os.PathError{Op: "mkdir", Path: host, Err: syscall.ENAMETOOLONG}
	l := &localInvoker{nodeID: "n1", log: discardLogger()}
	req := &lambdaapi.InvokeRequest{RequestID: "req-1", FunctionName: "f", AccountID: "000000000001"}
	for _, tc := range []struct {
		name     string
		err      error
		wantType string
		wantMsg  string
	}{
		{"code unpack path too long", fmt.Errorf("%w: code b: %w", runtime.ErrCode, pathErr), "InvalidZipFileException", "Upload the code again"},
		{"bad package", fmt.Errorf("%w: code b: %w: entry %q", runtime.ErrCode, codepkg.ErrBadPackage, "x"), "InvalidZipFileException", "cannot be unpacked"},
		{"code unavailable", fmt.Errorf("%w: code b: open %s: no such file", runtime.ErrCode, host), "ServiceException", "code could not be made available"},
		{"sandbox start", fmt.Errorf("%w: mount tree of %s: %w", runtime.ErrSandboxStart, host, pathErr), "ServiceException", "a sandbox could not be started"},
		{"sandboxes unsupported", fmt.Errorf("%w: no cgroup at %s", runtime.ErrSandboxUnsupported, host), "ResourceNotReadyException", "cannot run isolated sandboxes"},
		{"anything else", fmt.Errorf("opening %s: %w", host, pathErr), "ServiceException", "request req-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ae *lambdaapi.Error
			if !errors.As(l.platformError(tc.err, req), &ae) {
				t.Fatalf("platformError(%v) is not a *lambdaapi.Error", tc.err)
			}
			if ae.Type != tc.wantType || !strings.Contains(ae.Message, tc.wantMsg) {
				t.Fatalf("got %s %q; want %s containing %q", ae.Type, ae.Message, tc.wantType, tc.wantMsg)
			}
			if strings.Contains(ae.Message, "/srv/") {
				t.Fatalf("message %q names a host path", ae.Message)
			}
			if r := provisionedReason(tc.err); strings.Contains(r, "/srv/") {
				t.Fatalf("provisioned status reason %q names a host path", r)
			}
		})
	}
}
