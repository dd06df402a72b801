package node

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// zipFiles builds a zip in memory; mode 0755 entries are executable.
func zipFiles(t testing.TB, files map[string][]byte, modes map[string]os.FileMode) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate}
		mode := os.FileMode(0o644)
		if m, ok := modes[name]; ok {
			mode = m
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pythonZip returns the test Python function, with its marker string
// replaced so that two versions of the code differ.
func pythonZip(t testing.TB, marker string) []byte {
	src := bytes.ReplaceAll(readFile(t, "testdata/fns/python/app.py"), []byte(`"marker": "v1"`), []byte(`"marker": "`+marker+`"`))
	return zipFiles(t, map[string][]byte{"app.py": src}, nil)
}

func nodeZip(t testing.TB) []byte {
	return zipFiles(t, map[string][]byte{"index.js": readFile(t, "testdata/fns/node/index.js")}, nil)
}

var (
	goFnOnce sync.Once
	goFnBin  []byte
	goFnErr  error
)

// goZip builds testdata/gofn (aws-lambda-go) as a static bootstrap.
func goZip(t testing.TB) []byte {
	t.Helper()
	goFnOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stoke-gofn-")
		if err != nil {
			goFnErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/gofn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			goFnErr = err
			t.Logf("%s", b)
			return
		}
		goFnBin, goFnErr = os.ReadFile(out)
	})
	if goFnErr != nil {
		t.Fatalf("build gofn: %v", goFnErr)
	}
	return zipFiles(t, map[string][]byte{"bootstrap": goFnBin}, map[string]os.FileMode{"bootstrap": 0o755})
}

// sdkClient returns a Lambda client for the agent signed with creds.
func sdkClient(a *Agent, creds Credentials) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:           a.cfg.Region,
		BaseEndpoint:     aws.String("http://" + a.HTTPAddr()),
		Credentials:      credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		RetryMaxAttempts: 1,
	})
}

// adminClient is sdkClient with the bootstrap admin key.
func adminClient(t testing.TB, a *Agent) (*lambda.Client, Credentials) {
	t.Helper()
	creds, err := ReadCredentials(a.cfg.credentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	return sdkClient(a, creds), creds
}

// startTestAgent runs a dev-mode agent with real SigV4 auth until the test ends.
func startTestAgent(t *testing.T) *Agent {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	if os.Geteuid() != 0 {
		t.Log("not root: running sandboxes without isolation (--insecure-no-sandbox)")
		cfg.Worker.InsecureNoSandbox = true
	}
	return startAgent(t, cfg)
}

var bg = context.Background()

// captureHeaders is an SDK middleware that copies the raw HTTP response
// headers into *dst.
func captureHeaders(dst *http.Header) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("captureHeaders",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok {
					*dst = resp.Header.Clone()
				}
				return out, md, err
			}), middleware.After)
	}
}

// adminCaller sends SigV4-signed JSON to the agent's /stoke/v1 endpoints.
type adminCaller struct {
	a     *Agent
	creds Credentials
}

func (c *adminCaller) call(method, path string, in, out any) error {
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequest(method, "http://"+c.a.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: c.creds.AccessKeyID, SecretAccessKey: c.creds.SecretAccessKey},
		req, hex.EncodeToString(sum[:]), "lambda", c.a.cfg.Region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// createTenant makes a new account with its own (non-admin) key through
// the admin API and returns that key.
func createTenant(t testing.TB, a *Agent, _ *lambda.Client, name string) Credentials {
	t.Helper()
	admin, err := ReadCredentials(a.cfg.credentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	ac := &adminCaller{a: a, creds: admin}
	var acct struct{ AccountId string }
	if err := ac.call("POST", "/stoke/v1/accounts", map[string]any{"Name": name}, &acct); err != nil {
		t.Fatal(err)
	}
	var key struct{ AccessKeyId, SecretAccessKey string }
	if err := ac.call("POST", "/stoke/v1/keys", map[string]any{"AccountId": acct.AccountId}, &key); err != nil {
		t.Fatal(err)
	}
	return Credentials{AccountID: acct.AccountId, AccessKeyID: key.AccessKeyId, SecretAccessKey: key.SecretAccessKey, Region: a.cfg.Region}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
