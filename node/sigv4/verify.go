package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Principal is who signed a request.
type Principal struct {
	// AccountID is the 12-digit account the access key belongs to.
	AccountID string
	// AccessKeyID is the key that signed the request; Verify fills it in.
	AccessKeyID string
	// Attachment is whatever the CredentialStore returned with the secret
	// (a key record, permissions); Verify passes it through untouched.
	Attachment any
}

// CredentialStore looks up the secret of an access key. The caller
// implements it over the replicated key table.
type CredentialStore interface {
	// SecretFor returns the secret access key and the principal of
	// accessKeyID. For a key that does not exist or is not active it
	// returns an error that matches ErrUnknownAccessKey (errors.Is); any
	// other error is treated as a failure of the store, not of the client.
	// It is called concurrently, once per request that gets that far.
	SecretFor(ctx context.Context, accessKeyID string) (secret string, principal Principal, err error)
}

// Verifier checks SigV4 signatures. It is immutable and safe for concurrent
// use.
type Verifier struct {
	cfg   Config
	store CredentialStore
}

// New returns a Verifier, or the Config's validation error. A nil
// Config.Now means time.Now.
func New(cfg Config, store CredentialStore) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("sigv4: CredentialStore is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, store: store}, nil
}

// Verify authenticates r, whose body the caller has already read (bounded)
// into body; r.Body is not touched. It returns the signer's Principal, or an
// *Error whose Kind and Message say why the request is refused. Checks run
// cheapest first, and the CredentialStore is consulted only for requests
// that are well formed, correctly scoped and within the time window.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (Principal, error) {
	sr, e := parseRequest(r)
	if e != nil {
		return Principal{}, e
	}
	if e := v.checkScope(sr); e != nil {
		return Principal{}, e
	}
	if e := v.checkTime(sr); e != nil {
		return Principal{}, e
	}
	if !sr.signs("host") {
		return Principal{}, newError(KindMalformed, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	// The presigned form carries the token in the query, which is signed
	// as a whole; the header form must list it.
	if !sr.presigned && len(r.Header.Values(headerSecurityToken)) > 0 && !sr.signs("x-amz-security-token") {
		return Principal{}, newError(KindMalformed, "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if int64(len(body)) > v.cfg.MaxBodyBytes {
		return Principal{}, newError(KindBodyTooLarge, "Request must be smaller than %d bytes.", v.cfg.MaxBodyBytes)
	}
	payloadHash, e := payloadHash(r, body)
	if e != nil {
		return Principal{}, e
	}

	secret, principal, err := v.store.SecretFor(ctx, sr.accessKeyID)
	switch {
	case errors.Is(err, ErrUnknownAccessKey):
		return Principal{}, &Error{Kind: KindUnknownKey, Message: msgUnknownKey, Cause: err}
	case err != nil:
		return Principal{}, &Error{Kind: KindCredentialStore, Message: msgCredentialStore, Cause: err}
	}

	key := signingKey(secret, sr.scopeDate, sr.scopeRegion, sr.scopeService)
	matched := false
	for _, creq := range canonicalRequests(r, sr, payloadHash) {
		sum := sha256.Sum256([]byte(creq))
		toSign := algorithm + "\n" + sr.dateRaw + "\n" + sr.scope + "\n" + hex.EncodeToString(sum[:])
		// Every variant is computed and compared, so the time taken does
		// not reveal which one (if any) matched.
		if hmac.Equal(hmacSHA256(key, toSign), sr.signature) {
			matched = true
		}
	}
	if !matched {
		return Principal{}, newError(KindSignatureMismatch, msgSignatureMismatch)
	}
	principal.AccessKeyID = sr.accessKeyID
	return principal, nil
}

func (v *Verifier) checkScope(sr *signedRequest) *Error {
	if sr.scopeService != v.cfg.Service {
		return newError(KindWrongScope, "Credential should be scoped to correct service: '%s'. ", v.cfg.Service)
	}
	if sr.scopeRegion != v.cfg.Region {
		return newError(KindWrongScope, "Credential should be scoped to a valid region, not '%s'. ", truncate(sr.scopeRegion, 64))
	}
	if sr.scopeDate != sr.dateRaw[:8] {
		return newError(KindWrongScope, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			truncate(sr.scopeDate, 64), sr.dateRaw[:8], sr.dateRaw)
	}
	return nil
}

func (v *Verifier) checkTime(sr *signedRequest) *Error {
	now := v.cfg.Now().UTC()
	skew := v.cfg.MaxSkew
	if sr.date.After(now.Add(skew)) {
		return newError(KindExpired, "Signature not yet current: %s is still later than %s (%s + %s.)",
			sr.dateRaw, now.Add(skew).Format(amzDateLayout), now.Format(amzDateLayout), minutes(skew))
	}
	if sr.presigned {
		if sr.expires > v.cfg.MaxPresignExpiry {
			return newError(KindMalformed, "X-Amz-Expires must be less than a week (in seconds) that is %d.", int64(v.cfg.MaxPresignExpiry/time.Second))
		}
		if expiry := sr.date.Add(sr.expires); now.After(expiry) {
			return newError(KindExpired, "Signature expired: %s is now earlier than %s (%s + %d s.)",
				expiry.Format(amzDateLayout), now.Format(amzDateLayout), sr.dateRaw, int64(sr.expires/time.Second))
		}
		return nil
	}
	if sr.date.Before(now.Add(-skew)) {
		return newError(KindExpired, "Signature expired: %s is now earlier than %s (%s - %s.)",
			sr.dateRaw, now.Add(-skew).Format(amzDateLayout), now.Format(amzDateLayout), minutes(skew))
	}
	return nil
}

// payloadHash returns the payload hash to put in the canonical request: the
// SHA-256 of the body, or X-Amz-Content-Sha256 when the client sent one and
// it matches the body. UNSIGNED-PAYLOAD is not honoured: Stoke always
// checks the body, so such a request only verifies if it was signed over
// the real hash.
func payloadHash(r *http.Request, body []byte) (string, *Error) {
	sum := sha256.Sum256(body)
	real := hex.EncodeToString(sum[:])
	declared := r.Header.Values(headerContentSHA256)
	switch {
	case len(declared) == 0:
		return real, nil
	case len(declared) > 1:
		return "", newError(KindMalformed, "Only one X-Amz-Content-Sha256 header is allowed.")
	case declared[0] == unsignedPayload:
		return real, nil
	case strings.EqualFold(declared[0], real):
		return declared[0], nil
	}
	return "", newError(KindPayloadMismatch, msgPayloadMismatch)
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, scopeEnd)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func minutes(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", int64(d/time.Minute))
	}
	return d.String()
}
