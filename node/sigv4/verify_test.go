package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signed builds an Invoke request signed by the Go SDK's signer; opts
// change what is signed before signing.
type signOpts struct {
	keyID, secret, region, service string
	at                             time.Time
	body                           string
	presignExpires                 string // non-empty: presign with this X-Amz-Expires
	before                         func(*http.Request)
}

func signed(t testing.TB, o signOpts) *http.Request {
	t.Helper()
	if o.keyID == "" {
		o.keyID = testKeyID
	}
	if o.secret == "" {
		o.secret = testSecret
	}
	if o.region == "" {
		o.region = testRegion
	}
	if o.service == "" {
		o.service = "lambda"
	}
	if o.at.IsZero() {
		o.at = fixedNow
	}
	req, err := http.NewRequest("POST", "http://stoke.test:9000/2015-03-31/functions/arn%3Aaws%3Alambda%3Alocal%3A123456789012%3Afunction%3Amy-fn/invocations?Qualifier=%24LATEST", bytes.NewReader([]byte(o.body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
	if o.before != nil {
		o.before(req)
	}
	creds := aws.Credentials{AccessKeyID: o.keyID, SecretAccessKey: o.secret}
	signer := v4.NewSigner()
	if o.presignExpires == "" {
		if err := signer.SignHTTP(context.Background(), creds, req, sha256Hex([]byte(o.body)), o.service, o.region, o.at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	q := req.URL.Query()
	q.Set("X-Amz-Expires", o.presignExpires)
	req.URL.RawQuery = q.Encode()
	uri, hdr, err := signer.PresignHTTP(context.Background(), creds, req, sha256Hex([]byte(o.body)), o.service, o.region, o.at)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := http.NewRequest("POST", uri, bytes.NewReader([]byte(o.body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if !strings.EqualFold(k, "host") {
			pre.Header[k] = v
		}
	}
	return pre
}

var signedHeadersRE = regexp.MustCompile(`SignedHeaders=[^,]*`)

func TestVerify(t *testing.T) {
	const body = `{"order":42}`
	tests := []struct {
		name     string
		opts     signOpts
		after    func(*http.Request)         // tampering after signing
		verify   string                      // body the server sees; default opts.body
		config   func(*Config)               // verifier settings
		wantKind Kind                        // 0: must verify
		wantMsg  string                      // substring of the AWS message
		wantErr  error                       // errors.Is target besides the kind's sentinel
		check    func(*testing.T, Principal) // on success
	}{
		{name: "valid", opts: signOpts{body: body}, check: func(t *testing.T, p Principal) {
			if p.AccountID != testAccount || p.AccessKeyID != testKeyID || p.Attachment != "admin" {
				t.Fatalf("principal %+v", p)
			}
		}},
		{name: "4 minutes old", opts: signOpts{body: body, at: fixedNow.Add(-4 * time.Minute)}},
		{name: "4 minutes ahead", opts: signOpts{body: body, at: fixedNow.Add(4 * time.Minute)}},
		{name: "wrong secret", opts: signOpts{body: body, secret: "not-the-secret"}, wantKind: KindSignatureMismatch, wantMsg: msgSignatureMismatch},
		{name: "unknown key", opts: signOpts{body: body, keyID: "AKIANOBODY0000000000"}, wantKind: KindUnknownKey, wantMsg: "The security token included in the request is invalid."},
		{name: "inactive key", opts: signOpts{body: body, keyID: "AKIAINACTIVE00000000"}, wantKind: KindUnknownKey, wantMsg: msgUnknownKey, wantErr: ErrUnknownAccessKey},
		{name: "store failure", opts: signOpts{body: body, keyID: "AKIASTOREDOWN0000000"}, wantKind: KindCredentialStore, wantErr: errStoreDown},
		{name: "wrong region", opts: signOpts{body: body, region: "us-east-1"}, wantKind: KindWrongScope, wantMsg: "Credential should be scoped to a valid region, not 'us-east-1'."},
		{name: "wrong service", opts: signOpts{body: body, service: "s3"}, wantKind: KindWrongScope, wantMsg: "Credential should be scoped to correct service: 'lambda'."},
		{name: "6 minutes old", opts: signOpts{body: body, at: fixedNow.Add(-6 * time.Minute)}, wantKind: KindExpired, wantMsg: "Signature expired: 20260314T150326Z is now earlier than 20260314T150426Z (20260314T150926Z - 5 min.)"},
		{name: "6 minutes ahead", opts: signOpts{body: body, at: fixedNow.Add(6 * time.Minute)}, wantKind: KindExpired, wantMsg: "Signature not yet current: 20260314T151526Z is still later than 20260314T151426Z (20260314T150926Z + 5 min.)"},
		{name: "tampered body", opts: signOpts{body: body}, verify: `{"order":43}`, wantKind: KindSignatureMismatch, wantMsg: msgSignatureMismatch},
		{name: "content hash header does not match body", opts: signOpts{body: body, before: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(body)))
		}}, verify: `{"order":43}`, wantKind: KindPayloadMismatch, wantMsg: msgPayloadMismatch},
		{name: "tampered signed header", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Invocation-Type", "Event")
		}, wantKind: KindSignatureMismatch},
		// A header set in process in non-canonical form is signed under its
		// lowercase name and found again by case-folding.
		{name: "header stored in non-canonical form", opts: signOpts{body: body, before: func(r *http.Request) {
			r.Header["x-stoke-odd"] = []string{"v"}
		}}},
		{name: "tampered non-canonical header", opts: signOpts{body: body, before: func(r *http.Request) {
			r.Header["x-stoke-odd"] = []string{"v"}
		}}, after: func(r *http.Request) {
			r.Header["x-stoke-odd"] = []string{"w"}
		}, wantKind: KindSignatureMismatch},
		{name: "tampered query", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.URL.RawQuery = "Qualifier=1"
		}, wantKind: KindSignatureMismatch},
		{name: "tampered path", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.URL.RawPath = strings.Replace(r.URL.RawPath, "my-fn", "other", 1)
		}, wantKind: KindSignatureMismatch},
		{name: "host not signed", opts: signOpts{body: body}, after: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", signedHeadersRE.ReplaceAllStringFunc(a, func(s string) string { return strings.Replace(s, "host;", "", 1) }))
		}, wantKind: KindMalformed, wantMsg: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."},
		{name: "security token not signed", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Security-Token", "smuggled")
		}, wantKind: KindMalformed, wantMsg: "'X-Amz-Security-Token' must be a 'SignedHeader'"},
		// A captured request replayed with an x-amz-* header it was not
		// signed with must not verify, whatever the header's value.
		{name: "unsigned log type added", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Log-Type", "Tail")
		}, wantKind: KindMalformed, wantMsg: "The request carries the header 'X-Amz-Log-Type', which is not in the 'SignedHeaders'"},
		{name: "unsigned client context added", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header["x-amz-client-context"] = []string{"e30="}
		}, wantKind: KindMalformed, wantMsg: "not in the 'SignedHeaders'"},
		{name: "invocation type dropped from the signed headers", opts: signOpts{body: body}, after: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(a, ";x-amz-invocation-type", "", 1))
		}, wantKind: KindMalformed, wantMsg: "'X-Amz-Invocation-Type'"},
		{name: "unsigned token header beside a presigned query", opts: signOpts{body: body, presignExpires: "60"}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Security-Token", "smuggled")
		}, wantKind: KindMalformed, wantMsg: "'X-Amz-Security-Token', which is not in the 'SignedHeaders'"},
		// Headers outside x-amz-* (user agents, trace ids) stay unsigned,
		// as every SDK sends them.
		{name: "unsigned user agent and trace id", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("User-Agent", "aws-cli/2.15.0")
			r.Header.Set("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
		}},
		{name: "scope date differs from X-Amz-Date", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", "20260313T235959Z")
		}, wantKind: KindWrongScope, wantMsg: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260314' != '20260313', from '20260313T235959Z'."},
		{name: "no authentication", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Del("Authorization")
		}, wantKind: KindMissingAuth, wantMsg: "Missing Authentication Token"},
		{name: "signature parameter missing", opts: signOpts{body: body}, after: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
		}, wantKind: KindMalformed, wantMsg: "Authorization header requires 'Signature' parameter."},
		{name: "SigV4a algorithm", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
		}, wantKind: KindMalformed, wantMsg: "Unsupported authorization algorithm"},
		{name: "fractional seconds in X-Amz-Date", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", "20260314T150926.5Z")
		}, wantKind: KindMalformed},
		{name: "body above MaxBodyBytes", opts: signOpts{body: body}, config: func(c *Config) { c.MaxBodyBytes = 8 }, wantKind: KindBodyTooLarge, wantMsg: "Request must be smaller than 8 bytes."},
		{name: "header and query forms together", opts: signOpts{body: body}, after: func(r *http.Request) {
			r.URL.RawQuery += "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
		}, wantKind: KindMalformed, wantMsg: "Only one auth mechanism allowed"},

		{name: "presigned", opts: signOpts{body: body, presignExpires: "60"}},
		{name: "presigned 30 min ago, valid 1 h", opts: signOpts{body: body, presignExpires: "3600", at: fixedNow.Add(-30 * time.Minute)}},
		{name: "presigned and expired", opts: signOpts{body: body, presignExpires: "60", at: fixedNow.Add(-61 * time.Second)}, wantKind: KindExpired, wantMsg: "Signature expired: 20260314T150925Z is now earlier than 20260314T150926Z (20260314T150825Z + 60 s.)"},
		{name: "presigned in the future", opts: signOpts{body: body, presignExpires: "3600", at: fixedNow.Add(10 * time.Minute)}, wantKind: KindExpired, wantMsg: "Signature not yet current"},
		{name: "presigned for more than a week", opts: signOpts{body: body, presignExpires: "604801"}, wantKind: KindMalformed, wantMsg: "X-Amz-Expires must be less than a week"},
		{name: "presigned with tampered body", opts: signOpts{body: body, presignExpires: "60"}, verify: "{}", wantKind: KindSignatureMismatch},
		{name: "presigned with tampered expiry", opts: signOpts{body: body, presignExpires: "60", at: fixedNow.Add(-61 * time.Second)}, after: func(r *http.Request) {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Expires=60", "X-Amz-Expires=600", 1)
		}, wantKind: KindSignatureMismatch},
		{name: "presigned without signature", opts: signOpts{body: body, presignExpires: "60"}, after: func(r *http.Request) {
			q := r.URL.Query()
			q.Del("X-Amz-Signature")
			r.URL.RawQuery = q.Encode()
		}, wantKind: KindMalformed, wantMsg: "AWS query-string parameters must include"},
		{name: "presigned with wrong region", opts: signOpts{body: body, presignExpires: "60", region: "eu-west-1"}, wantKind: KindWrongScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, tc.config)
			req := signed(t, tc.opts)
			if tc.after != nil {
				tc.after(req)
			}
			b := tc.opts.body
			if tc.verify != "" {
				b = tc.verify
			}
			p, err := v.Verify(context.Background(), req, []byte(b))
			if tc.wantKind == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if tc.check != nil {
					tc.check(t, p)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Verify = %v, want *Error of kind %s", err, tc.wantKind)
			}
			if se.Kind != tc.wantKind {
				t.Fatalf("kind %s (%s), want %s", se.Kind, se.Message, tc.wantKind)
			}
			if !errors.Is(err, tc.wantKind.Sentinel()) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.wantKind.Sentinel())
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.wantErr)
			}
			if !strings.Contains(se.Message, tc.wantMsg) {
				t.Fatalf("message %q, want it to contain %q", se.Message, tc.wantMsg)
			}
			if p != (Principal{}) {
				t.Fatalf("refused request returned principal %+v", p)
			}
			if strings.Contains(se.Error(), testSecret) {
				t.Fatal("error text contains the secret")
			}
		})
	}
}

// TestKnownAnswer checks the verifier against the "get-vanilla" and
// "get-vanilla-query-order-key-case" vectors of AWS's published SigV4 test
// suite, computed by AWS rather than by any signer under test here.
func TestKnownAnswer(t *testing.T) {
	tests := []struct{ name, target, sig string }{
		{"get-vanilla", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Service, cfg.Region = "service", "us-east-1"
			cfg.Now = func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) }
			v, err := New(cfg, staticStore{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})
			if err != nil {
				t.Fatal(err)
			}
			req := &http.Request{Method: "GET", Host: "example.amazonaws.com", Header: http.Header{}, RequestURI: tc.target}
			req.URL, _ = url.ParseRequestURI(tc.target)
			req.Header.Set("X-Amz-Date", "20150830T123600Z")
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+tc.sig)
			if _, err := v.Verify(context.Background(), req, nil); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			flipped := []byte(tc.sig)
			flipped[0] ^= 1
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+string(flipped))
			if _, err := v.Verify(context.Background(), req, nil); !errors.Is(err, ErrSignatureMismatch) {
				t.Fatalf("flipped signature: %v", err)
			}
		})
	}
}

type staticStore struct{ id, secret string }

func (s staticStore) SecretFor(_ context.Context, id string) (string, Principal, error) {
	if id != s.id {
		return "", Principal{}, ErrUnknownAccessKey
	}
	return s.secret, Principal{AccountID: "000000000000"}, nil
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	bad := Config{Service: "lam bda", Region: "", MaxSkew: 0, MaxPresignExpiry: -1, MaxBodyBytes: 0}
	err := bad.Validate()
	for _, want := range []string{"Service", "Region", "MaxSkew", "MaxPresignExpiry", "MaxBodyBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if _, err := New(bad, fakeStore{}); err == nil {
		t.Fatal("New accepted an invalid Config")
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Fatal("New accepted a nil CredentialStore")
	}
}

// TestAuthVerifyHeadersBeforeBody: what the headers can prove is refused before
// the caller reads a byte of the body; with a declared payload hash that
// includes the signature, and the body is then held to the hash.
func TestAuthVerifyHeadersBeforeBody(t *testing.T) {
	const body = `{"order":42}`
	declare := func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(body))) }
	tests := []struct {
		name       string
		opts       signOpts
		after      func(*http.Request)
		headerKind Kind // refusal by VerifyHeaders; 0: accepted
		early      bool // SignatureVerified after VerifyHeaders
		verify     string
		bodyKind   Kind // refusal by VerifyBody; 0: accepted
	}{
		{name: "unsigned", opts: signOpts{body: body}, after: func(r *http.Request) { r.Header.Del("Authorization") }, headerKind: KindMissingAuth},
		{name: "unknown key", opts: signOpts{body: body, keyID: "AKIANOBODY0000000000"}, headerKind: KindUnknownKey},
		{name: "bad signature, declared hash", opts: signOpts{body: body, secret: "wrong", before: declare}, headerKind: KindSignatureMismatch},
		{name: "good signature, declared hash", opts: signOpts{body: body, before: declare}, early: true},
		{name: "good signature, declared hash, other body", opts: signOpts{body: body, before: declare}, early: true, verify: `{"order":43}`, bodyKind: KindPayloadMismatch},
		{name: "bad signature, no declared hash", opts: signOpts{body: body, secret: "wrong"}, bodyKind: KindSignatureMismatch},
		{name: "good signature, no declared hash", opts: signOpts{body: body}},
		{name: "unsigned payload declared", opts: signOpts{body: body, before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD") }}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, nil)
			req := signed(t, tc.opts)
			if tc.after != nil {
				tc.after(req)
			}
			// The body must not be touched before VerifyBody.
			req.Body = bodyTrap{t}
			p, err := v.VerifyHeaders(context.Background(), req)
			if tc.headerKind != 0 {
				if !errors.Is(err, tc.headerKind.Sentinel()) {
					t.Fatalf("VerifyHeaders = %v, want kind %s", err, tc.headerKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyHeaders: %v", err)
			}
			if p.SignatureVerified() != tc.early {
				t.Fatalf("SignatureVerified = %t, want %t", p.SignatureVerified(), tc.early)
			}
			b := tc.opts.body
			if tc.verify != "" {
				b = tc.verify
			}
			got, err := p.VerifyBody([]byte(b))
			if tc.bodyKind != 0 {
				if !errors.Is(err, tc.bodyKind.Sentinel()) || got != (Principal{}) {
					t.Fatalf("VerifyBody = %+v, %v, want kind %s", got, err, tc.bodyKind)
				}
				return
			}
			if err != nil || got.AccountID != testAccount || got.AccessKeyID != testKeyID {
				t.Fatalf("VerifyBody = %+v, %v", got, err)
			}
		})
	}
}

// bodyTrap fails the test when read.
type bodyTrap struct{ t *testing.T }

func (b bodyTrap) Read([]byte) (int, error) {
	b.t.Error("the body was read before VerifyBody")
	return 0, io.EOF
}
func (bodyTrap) Close() error { return nil }
