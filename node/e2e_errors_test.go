package node

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// TestSDKErrorsAreTyped asserts every error case of the API as the SDK's
// typed exception, and that refused requests leave nothing behind.
func TestSDKErrorsAreTyped(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	good := pythonZip(t, "e")
	create := func(mut func(*lambda.CreateFunctionInput)) error {
		in := &lambda.CreateFunctionInput{FunctionName: aws.String("fn"), Runtime: types.RuntimePython311, Handler: aws.String("app.handler"),
			Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: good}}
		if mut != nil {
			mut(in)
		}
		_, err := c.CreateFunction(bg, in)
		return err
	}
	traversal := zipFiles(t, map[string][]byte{"../evil.py": []byte("x")}, nil)
	bigEnv := map[string]string{"BIG": strings.Repeat("x", 4100)}

	invalid := []struct {
		name string
		mut  func(*lambda.CreateFunctionInput)
	}{
		{"bad name", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("no spaces allowed") }},
		{"memory too small", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(64) }},
		{"timeout too long", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) }},
		{"ephemeral too small", func(in *lambda.CreateFunctionInput) {
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(100)}
		}},
		{"unknown runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = "cobol85" }},
		{"handler with spaces", func(in *lambda.CreateFunctionInput) { in.Handler = aws.String("app handler") }},
		{"bad role", func(in *lambda.CreateFunctionInput) { in.Role = aws.String("not-a-role") }},
		{"environment over 4 KB", func(in *lambda.CreateFunctionInput) { in.Environment = &types.Environment{Variables: bigEnv} }},
		{"reserved variable", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"AWS_REGION": "x"}}
		}},
		{"zip with ..", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = traversal }},
		{"not a zip", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = []byte("plain text") }},
		{"code in S3", func(in *lambda.CreateFunctionInput) {
			in.Code = &types.FunctionCode{S3Bucket: aws.String("b"), S3Key: aws.String("k")}
		}},
		{"arm64", func(in *lambda.CreateFunctionInput) { in.Architectures = []types.Architecture{types.ArchitectureArm64} }},
	}
	for _, tc := range invalid {
		if err := create(tc.mut); !isErr[*types.InvalidParameterValueException](err) {
			t.Errorf("%s: err = %v, want InvalidParameterValueException", tc.name, err)
		}
	}
	// Nothing was created by any refused request.
	if list, err := c.ListFunctions(bg, &lambda.ListFunctionsInput{}); err != nil || len(list.Functions) != 0 {
		t.Fatalf("refused creates left functions behind: %v %d", err, len(list.Functions))
	}

	if err := create(nil); err != nil {
		t.Fatal(err)
	}
	if err := create(nil); !isErr[*types.ResourceConflictException](err) {
		t.Fatalf("duplicate create: %v", err)
	}
	for name, call := range map[string]func() error{
		"get missing": func() error {
			_, err := c.GetFunction(bg, &lambda.GetFunctionInput{FunctionName: aws.String("missing")})
			return err
		},
		"invoke missing": func() error {
			_, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("missing")})
			return err
		},
		"missing version": func() error {
			_, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("fn"), Qualifier: aws.String("9")})
			return err
		},
		"missing alias": func() error {
			_, err := c.GetAlias(bg, &lambda.GetAliasInput{FunctionName: aws.String("fn"), Name: aws.String("nope")})
			return err
		},
		"alias to missing version": func() error {
			_, err := c.CreateAlias(bg, &lambda.CreateAliasInput{FunctionName: aws.String("fn"), Name: aws.String("a"), FunctionVersion: aws.String("3")})
			return err
		},
	} {
		if err := call(); !isErr[*types.ResourceNotFoundException](err) {
			t.Errorf("%s: err = %v, want ResourceNotFoundException", name, err)
		}
	}
	if _, err := c.UpdateFunctionConfiguration(bg, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("fn"),
		RevisionId: aws.String("stale"), MemorySize: aws.Int32(256)}); !isErr[*types.PreconditionFailedException](err) {
		t.Fatalf("stale revision: %v", err)
	}
	big := make([]byte, 6*1024*1024+10)
	copy(big, `"`)
	if _, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("fn"), Payload: big}); !isErr[*types.RequestTooLargeException](err) {
		t.Fatalf("7 MB payload: %v", err)
	}
	if _, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("fn"), Payload: []byte("{not json")}); !isErr[*types.InvalidRequestContentException](err) {
		t.Fatalf("non-JSON payload: %v", err)
	}
	if _, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("fn"), ClientContext: aws.String("%%%")}); !isErr[*types.InvalidRequestContentException](err) {
		t.Fatalf("bad client context: %v", err)
	}
	if _, err := c.PutFunctionConcurrency(bg, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("fn"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("fn")})
	var throttle *types.TooManyRequestsException
	if !errors.As(err, &throttle) {
		t.Fatalf("reserved concurrency 0: %v", err)
	}
	if throttle.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Fatalf("throttle reason %q", throttle.Reason)
	}
}

// TestAuthentication covers bad signatures, clock skew, unknown keys and
// tenant isolation between accounts.
func TestAuthentication(t *testing.T) {
	a := startTestAgent(t)
	c, admin := adminClient(t, a)
	if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("mine"), Runtime: types.RuntimePython311,
		Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, "a")}}); err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + a.HTTPAddr()
	signed := func(secret string, at time.Time, body string) *http.Response {
		req, _ := http.NewRequest("GET", endpoint+"/2015-03-31/functions/", strings.NewReader(body))
		sum := sha256.Sum256([]byte(body))
		creds := aws.Credentials{AccessKeyID: admin.AccessKeyID, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "lambda", "local", at); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := signed(admin.SecretAccessKey, time.Now(), ""); r.StatusCode != 200 {
		t.Fatalf("correct signature: %d", r.StatusCode)
	}
	for name, r := range map[string]*http.Response{
		"wrong secret":       signed("not-the-secret", time.Now(), ""),
		"clock 6 min behind": signed(admin.SecretAccessKey, time.Now().Add(-6*time.Minute), ""),
		"clock 6 min ahead":  signed(admin.SecretAccessKey, time.Now().Add(6*time.Minute), ""),
	} {
		if r.StatusCode != 403 || r.Header.Get("X-Amzn-Errortype") == "" {
			t.Errorf("%s: status %d type %q, want 403 with an error type", name, r.StatusCode, r.Header.Get("X-Amzn-Errortype"))
		}
	}
	if r := signed(admin.SecretAccessKey, time.Now().Add(-4*time.Minute), ""); r.StatusCode != 200 {
		t.Errorf("clock 4 min behind (inside the 5-minute window): %d", r.StatusCode)
	}
	resp, err := http.Get(endpoint + "/2015-03-31/functions/")
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("unsigned request: %v %d", err, resp.StatusCode)
	}

	// A second account's key sees none of the first account's functions.
	other := createTenant(t, a, c, "team-b")
	oc := sdkClient(a, other)
	list, err := oc.ListFunctions(bg, &lambda.ListFunctionsInput{})
	if err != nil || len(list.Functions) != 0 {
		t.Fatalf("other account lists %v functions (err %v)", len(list.Functions), err)
	}
	if _, err := oc.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("mine")}); !isErr[*types.ResourceNotFoundException](err) {
		t.Fatalf("other account invoking by name: %v", err)
	}
	arn := "arn:aws:lambda:local:" + admin.AccountID + ":function:mine"
	var apiErr smithy.APIError
	if _, err := oc.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String(arn)}); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("other account invoking by ARN: %v", err)
	}
	if _, err := oc.DeleteFunction(bg, &lambda.DeleteFunctionInput{FunctionName: aws.String(arn)}); err == nil {
		t.Fatal("other account deleted the first account's function")
	}
	// And the same name is free in the other account.
	if _, err := oc.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("mine"), Runtime: types.RuntimePython311,
		Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, "b")}}); err != nil {
		t.Fatalf("same name in another account: %v", err)
	}
	// Non-admin keys cannot manage accounts.
	if err := (&adminCaller{a: a, creds: other}).call("GET", "/stoke/v1/accounts", nil, nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("non-admin listing accounts: %v", err)
	}
}

// TestZipTraversalWritesNothingOutside uploads hostile archives and checks
// the refusal left no file outside the node's code store.
func TestZipTraversalWritesNothingOutside(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "link"}
	h.SetMode(0o777 | 1<<27) // symlink
	w, _ := zw.CreateHeader(h)
	w.Write([]byte("/etc/passwd"))
	zw.Close()
	for name, z := range map[string][]byte{
		"absolute symlink": buf.Bytes(),
		"absolute path":    zipFiles(t, map[string][]byte{"/tmp/stoke-evil": []byte("x")}, nil),
		"setuid":           zipFiles(t, map[string][]byte{"app.py": []byte("x")}, map[string]os.FileMode{"app.py": os.ModeSetuid | 0o755}),
	} {
		_, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("evil"), Runtime: types.RuntimePython311,
			Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: z}})
		if !isErr[*types.InvalidParameterValueException](err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat("/tmp/stoke-evil"); err == nil {
		t.Fatal("an archive entry was written outside the code store")
	}
	if ids, _ := a.Blobs().List(); len(ids) != 0 {
		t.Fatalf("refused archives left %d blobs", len(ids))
	}
}
