package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/node/sigv4"
)

// downStore is a credential store that cannot answer, except for the one
// key it names.
type downStore struct{ knows string }

func (s downStore) SecretFor(_ context.Context, id string) (string, sigv4.Principal, error) {
	if id == s.knows {
		return "secret", sigv4.Principal{AccountID: "123456789012"}, nil
	}
	return "", sigv4.Principal{}, errors.New("replica unavailable")
}

// TestSigV4AuthStatusMatchesTheException: a refusal's HTTP status is the
// one AWS pairs with its exception: a failed credential store is a 500
// ServiceException (the client may retry), a body over the limit a 413
// RequestTooLargeException, a bad signature a 403.
func TestSigV4AuthStatusMatchesTheException(t *testing.T) {
	cfg := sigv4.DefaultConfig()
	cfg.MaxBodyBytes = 16
	v, err := sigv4.New(cfg, downStore{knows: "AKIAKNOWN00000000000"})
	if err != nil {
		t.Fatal(err)
	}
	auth := &sigv4Auth{v: v}
	signed := func(keyID string, body []byte) *http.Request {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:9000/2015-03-31/functions/f/invocations", bytes.NewReader(body))
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: "secret"}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "lambda", "local", time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	tests := []struct {
		name   string
		req    *http.Request
		body   []byte
		status int
		typ    string
	}{
		{"credential store down", signed("AKIAEXAMPLE000000000", []byte(`{}`)), []byte(`{}`), http.StatusInternalServerError, "ServiceException"},
		{"body over the limit", signed("AKIAKNOWN00000000000", bytes.Repeat([]byte("x"), 17)), bytes.Repeat([]byte("x"), 17), http.StatusRequestEntityTooLarge, "RequestTooLargeException"},
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://127.0.0.1:9000/", nil)
			return r
		}(), nil, http.StatusForbidden, "MissingAuthenticationTokenException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check, err := auth.AuthenticateHeaders(tt.req)
			if err == nil {
				_, err = check.AuthenticateBody(tt.body)
			}
			var ae *lambdaapi.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Authenticate = %v, want a *lambdaapi.Error", err)
			}
			if ae.Status != tt.status || ae.Type != tt.typ {
				t.Fatalf("got %d %s, want %d %s", ae.Status, ae.Type, tt.status, tt.typ)
			}
		})
	}
}
