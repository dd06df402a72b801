package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const (
	testKeyID   = "AKIASTOKETEST0000001"
	testSecret  = "stoke/secret+key/for/tests/only/0123456789"
	testAccount = "123456789012"
	testRegion  = "local"
)

// fakeStore knows one active key, one inactive key and one key whose lookup
// fails inside the store.
type fakeStore struct{}

var errStoreDown = errors.New("store unavailable")

func (fakeStore) SecretFor(_ context.Context, id string) (string, Principal, error) {
	switch id {
	case testKeyID:
		return testSecret, Principal{AccountID: testAccount, Attachment: "admin"}, nil
	case "AKIAINACTIVE00000000":
		return "", Principal{}, fmt.Errorf("key %s revoked: %w", id, ErrUnknownAccessKey)
	case "AKIASTOREDOWN0000000":
		return "", Principal{}, errStoreDown
	}
	return "", Principal{}, ErrUnknownAccessKey
}

// fixedNow is the clock every test's verifier runs on unless it says
// otherwise; signers sign at this instant.
var fixedNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func newTestVerifier(t testing.TB, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Region = testRegion
	cfg.Now = func() time.Time { return fixedNow }
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg, fakeStore{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verdict is what the test server reports about each request it verified.
type verdict struct {
	OK        bool   `json:"ok"`
	Account   string `json:"account"`
	KeyID     string `json:"keyId"`
	Kind      string `json:"kind"`
	Message   string `json:"message"`
	Path      string `json:"path"`
	RawQuery  string `json:"rawQuery"`
	BodyBytes int    `json:"bodyBytes"`
}

// verifyingServer answers every request with its verdict as JSON: 200 if
// the signature verified, 403 otherwise, with the AWS error headers a Lambda
// client understands.
func verifyingServer(t testing.TB, v *Verifier) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		p, err := v.Verify(r.Context(), r, body)
		vd := verdict{OK: err == nil, Account: p.AccountID, KeyID: p.AccessKeyID, Path: r.URL.Path, RawQuery: r.URL.RawQuery, BodyBytes: len(body)}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Errorf("Verify returned %T, want *Error: %v", err, err)
				return
			}
			vd.Kind, vd.Message = se.Kind.String(), se.Message
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"Type": "User", "message": se.Message, "kind": vd.Kind})
			return
		}
		json.NewEncoder(w).Encode(vd)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// send performs req and decodes the server's verdict.
func send(t testing.TB, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("decoding verdict (status %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
