package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// These tests sign with aws-sdk-go-v2's own signer, send over a real
// socket and verify on the server side: the verifier must agree with the
// signer Stoke's clients use on every shape of Lambda request.

type sdkCase struct {
	name    string
	method  string
	path    string // escaped, as the client puts it on the wire
	query   string // raw, escaped
	headers map[string]string
	body    string
}

var sdkCases = []sdkCase{
	{name: "get function by name", method: "GET", path: "/2015-03-31/functions/my-fn"},
	{name: "invoke by full ARN", method: "POST", path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Alocal%3A123456789012%3Afunction%3Amy-fn/invocations", body: `{"hello":"world"}`},
	{name: "invoke with $LATEST in the path", method: "POST", path: "/2015-03-31/functions/my-fn%3A%24LATEST/invocations", body: `{}`},
	{name: "qualifier $LATEST in the query", method: "GET", path: "/2015-03-31/functions/my-fn", query: "Qualifier=%24LATEST"},
	{name: "repeated keys and empty values", method: "DELETE", path: "/2017-03-31/tags/arn%3Aaws%3Alambda%3Alocal%3A123456789012%3Afunction%3Amy-fn", query: "tagKeys=team&tagKeys=cost%20center&tagKeys=&Marker="},
	{name: "value-less key and unsorted query", method: "GET", path: "/2015-03-31/functions", query: "MaxItems=50&FunctionVersion=ALL&Marker=&versions"},
	{name: "reserved and non-ASCII characters in the query", method: "GET", path: "/2015-03-31/functions", query: "Marker=a%2Fb%2Bc%3D%26d&x=caf%C3%A9&y=%7e~"},
	{name: "sequential spaces in header values", method: "POST", path: "/2015-03-31/functions/my-fn/invocations", headers: map[string]string{"X-Amz-Client-Context": "  e30=   padded    value  ", "X-Amz-Log-Type": "Tail"}, body: "x"},
	{name: "payload hash header", method: "PUT", path: "/2015-03-31/functions/my-fn/code", headers: map[string]string{"X-Amz-Content-Sha256": sha256Hex([]byte(`{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}`))}, body: `{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}`},
	{name: "double slash kept by the Go signer", method: "GET", path: "/2015-03-31//functions/my-fn"},
	{name: "root path", method: "GET", path: "/"},
}

func TestSDKHeaderSignatureVerifies(t *testing.T) {
	v := newTestVerifier(t, nil)
	srv := verifyingServer(t, v)
	signer := v4.NewSigner()
	for _, token := range []string{"", "session-token-123"} {
		for _, tc := range sdkCases {
			t.Run(tc.name+"/token="+token, func(t *testing.T) {
				req := newSDKRequest(t, srv.URL, tc)
				creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: token}
				if err := signer.SignHTTP(context.Background(), creds, req, sha256Hex([]byte(tc.body)), "lambda", testRegion, fixedNow); err != nil {
					t.Fatal(err)
				}
				status, m := send(t, req)
				if status != http.StatusOK {
					t.Fatalf("status %d, verdict %v", status, m)
				}
				if m["account"] != testAccount || m["keyId"] != testKeyID {
					t.Fatalf("principal = %v/%v, want %s/%s", m["account"], m["keyId"], testAccount, testKeyID)
				}
			})
		}
	}
}

func TestSDKPresignedVerifies(t *testing.T) {
	v := newTestVerifier(t, nil)
	srv := verifyingServer(t, v)
	signer := v4.NewSigner()
	for _, tc := range sdkCases {
		t.Run(tc.name, func(t *testing.T) {
			req := newSDKRequest(t, srv.URL, tc)
			q := req.URL.Query()
			q.Set("X-Amz-Expires", "300")
			req.URL.RawQuery = q.Encode()
			creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: "presign-token"}
			uri, hdr, err := signer.PresignHTTP(context.Background(), creds, req, sha256Hex([]byte(tc.body)), "lambda", testRegion, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(uri, "X-Amz-Signature=") {
				t.Fatalf("presigned URI lacks a signature: %s", uri)
			}
			pre, err := http.NewRequest(tc.method, uri, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range hdr {
				if !strings.EqualFold(k, "host") {
					pre.Header[k] = vs
				}
			}
			status, m := send(t, pre)
			if status != http.StatusOK {
				t.Fatalf("status %d, verdict %v", status, m)
			}
		})
	}
}

func newSDKRequest(t testing.TB, base string, tc sdkCase) *http.Request {
	t.Helper()
	u := base + tc.path
	if tc.query != "" {
		u += "?" + tc.query
	}
	var body io.Reader
	if tc.body != "" {
		body = bytes.NewReader([]byte(tc.body))
	}
	req, err := http.NewRequest(tc.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range tc.headers {
		req.Header.Set(k, v)
	}
	return req
}

// TestLambdaClientThroughVerifier drives the real service/lambda client,
// whose serializers escape ARNs, qualifiers and repeated query keys their
// own way, against a server that verifies every request.
func TestLambdaClientThroughVerifier(t *testing.T) {
	v := newTestVerifier(t, func(c *Config) { c.Now = time.Now })
	srv := verifyingServer(t, v)
	client := func(secret string) *lambda.Client {
		return lambda.New(lambda.Options{
			Region:       testRegion,
			BaseEndpoint: aws.String(srv.URL),
			Credentials:  credentials.NewStaticCredentialsProvider(testKeyID, secret, ""),
			HTTPClient:   srv.Client(),
		})
	}
	ctx := context.Background()
	good := client(testSecret)
	arn := "arn:aws:lambda:local:123456789012:function:my-fn"

	calls := map[string]func(*lambda.Client) error{
		"Invoke ARN with $LATEST": func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(arn), Qualifier: aws.String("$LATEST"), Payload: []byte(`{"k":"v  with  spaces"}`), ClientContext: aws.String("e30=")})
			return err
		},
		// Every x-amz-* header Lambda reads must reach the server signed.
		"Invoke with Lambda's x-amz headers": func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("my-fn"), InvocationType: types.InvocationTypeDryRun,
				LogType: types.LogTypeTail, ClientContext: aws.String("e30=")})
			return err
		},
		"Invoke name:qualifier": func(c *lambda.Client) error {
			_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("my-fn:$LATEST")})
			return err
		},
		"GetFunction": func(c *lambda.Client) error {
			_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(arn), Qualifier: aws.String("live")})
			return err
		},
		"ListFunctions": func(c *lambda.Client) error {
			_, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{Marker: aws.String(""), MaxItems: aws.Int32(5), FunctionVersion: "ALL"})
			return err
		},
		"UntagResource repeated keys": func(c *lambda.Client) error {
			_, err := c.UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String(arn), TagKeys: []string{"b", "a", "a b", ""}})
			return err
		},
		"UpdateFunctionCode": func(c *lambda.Client) error {
			_, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("my-fn"), ZipFile: bytes.Repeat([]byte("zip"), 10000)})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(good); err != nil {
				t.Fatalf("with the right secret: %v", err)
			}
			err := call(client("wrong-secret"))
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("with a wrong secret: got %v, want an API error", err)
			}
			if apiErr.ErrorCode() != "AccessDeniedException" || apiErr.ErrorMessage() != msgSignatureMismatch {
				t.Fatalf("with a wrong secret: got %s %q", apiErr.ErrorCode(), apiErr.ErrorMessage())
			}
		})
	}
}
