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
// into body; r.Body is not touched. It is VerifyHeaders followed by
// Pending.VerifyBody, for callers that hold the body anyway.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (Principal, error) {
	p, err := v.VerifyHeaders(ctx, r)
	if err != nil {
		return Principal{}, err
	}
	return p.VerifyBody(body)
}

// Pending is a request whose headers VerifyHeaders accepted and whose body
// is still to be checked with VerifyBody. It belongs to one request and one
// goroutine.
type Pending struct {
	v         *Verifier
	r         *http.Request
	sr        *signedRequest
	key       []byte
	principal Principal
	// declared is the payload hash the client put in
	// X-Amz-Content-Sha256, when it is one (64 hex digits); signed is
	// true once the signature has been verified over it.
	declared string
	signed   bool
}

// VerifyHeaders authenticates r from its request line and headers alone,
// before a byte of its body is read: the signature fields must be well
// formed, in scope and in time, every x-amz-* header must be signed, and
// the access key must be known. When the client declared its payload hash
// in X-Amz-Content-Sha256 (the JavaScript SDK does; botocore and the Go SDK
// do not for Lambda), the signature itself is verified here over that hash
// and only the body's hash is left for VerifyBody; otherwise the signature
// covers a hash of the body only the body can give, and VerifyBody checks
// it. Checks run cheapest first, and the CredentialStore is consulted only
// for requests that are well formed, correctly scoped and within the time
// window. Errors are *Error values, as Verify's.
func (v *Verifier) VerifyHeaders(ctx context.Context, r *http.Request) (*Pending, error) {
	sr, e := parseRequest(r)
	if e != nil {
		return nil, e
	}
	if e := v.checkScope(sr); e != nil {
		return nil, e
	}
	if e := v.checkTime(sr); e != nil {
		return nil, e
	}
	if !sr.signs("host") {
		return nil, newError(KindMalformed, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if e := checkAmzHeadersSigned(r, sr); e != nil {
		return nil, e
	}
	declared, e := declaredPayloadHash(r)
	if e != nil {
		return nil, e
	}

	secret, principal, err := v.store.SecretFor(ctx, sr.accessKeyID)
	switch {
	case errors.Is(err, ErrUnknownAccessKey):
		return nil, &Error{Kind: KindUnknownKey, Message: msgUnknownKey, Cause: err}
	case err != nil:
		return nil, &Error{Kind: KindCredentialStore, Message: msgCredentialStore, Cause: err}
	}
	principal.AccessKeyID = sr.accessKeyID
	p := &Pending{v: v, r: r, sr: sr, key: signingKey(secret, sr.scopeDate, sr.scopeRegion, sr.scopeService),
		principal: principal, declared: declared}
	if declared != "" {
		if e := p.checkSignature(declared); e != nil {
			return nil, e
		}
		p.signed = true
	}
	return p, nil
}

// SignatureVerified reports whether VerifyHeaders already verified the
// signature (over the declared payload hash), so that only the body's hash
// remains to be compared.
func (p *Pending) SignatureVerified() bool { return p.signed }

// VerifyBody completes the verification with the body the caller read
// (bounded) after VerifyHeaders: it must be within Config.MaxBodyBytes and
// hash to the declared payload hash, or, when none was declared, the
// signature must hold over its hash. It returns the signer's Principal.
func (p *Pending) VerifyBody(body []byte) (Principal, error) {
	if int64(len(body)) > p.v.cfg.MaxBodyBytes {
		return Principal{}, newError(KindBodyTooLarge, "Request must be smaller than %d bytes.", p.v.cfg.MaxBodyBytes)
	}
	sum := sha256.Sum256(body)
	real := hex.EncodeToString(sum[:])
	if p.signed {
		if !strings.EqualFold(p.declared, real) {
			return Principal{}, newError(KindPayloadMismatch, msgPayloadMismatch)
		}
		return p.principal, nil
	}
	hash, e := payloadHash(p.r, real)
	if e != nil {
		return Principal{}, e
	}
	if e := p.checkSignature(hash); e != nil {
		return Principal{}, e
	}
	return p.principal, nil
}

// checkSignature recomputes the signature over payloadHash and compares it
// with the client's.
func (p *Pending) checkSignature(payloadHash string) *Error {
	matched := false
	for _, creq := range canonicalRequests(p.r, p.sr, payloadHash) {
		sum := sha256.Sum256([]byte(creq))
		toSign := algorithm + "\n" + p.sr.dateRaw + "\n" + p.sr.scope + "\n" + hex.EncodeToString(sum[:])
		// Every variant is computed and compared, so the time taken does
		// not reveal which one (if any) matched.
		if hmac.Equal(hmacSHA256(p.key, toSign), p.sr.signature) {
			matched = true
		}
	}
	if !matched {
		return newError(KindSignatureMismatch, msgSignatureMismatch)
	}
	return nil
}

// unsignedAmzHeaders are the x-amz-* headers a request may carry without
// signing them, because SigV4 covers their values by other means: the
// date is part of the string to sign, and a declared payload hash is the
// last line of the canonical request.
var unsignedAmzHeaders = map[string]bool{
	"x-amz-date":           true,
	"x-amz-content-sha256": true,
}

// checkAmzHeadersSigned refuses a request carrying an x-amz-* header its
// signature does not cover: Lambda reads behaviour from such headers
// (X-Amz-Invocation-Type, X-Amz-Log-Type, X-Amz-Client-Context), and a
// captured request replayed within the skew window must not gain one.
// Every AWS signer signs all of them (botocore, the Go and JavaScript SDKs
// exclude only user-agent, expect, transfer-encoding, x-amzn-trace-id and
// hop-by-hop headers, none of which starts with x-amz-).
func checkAmzHeadersSigned(r *http.Request, sr *signedRequest) *Error {
	// The header form must list the token; the presigned form carries it
	// in the query, which is signed as a whole, and a token header beside
	// it is one more x-amz-* header that must be signed.
	if !sr.presigned && len(r.Header.Values(headerSecurityToken)) > 0 && !sr.signs("x-amz-security-token") {
		return newError(KindMalformed, "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.")
	}
	for k := range r.Header {
		name := strings.ToLower(k)
		if !strings.HasPrefix(name, "x-amz-") || unsignedAmzHeaders[name] || sr.signs(name) {
			continue
		}
		return newError(KindMalformed, "The request carries the header '%s', which is not in the 'SignedHeaders' of the AWS Authorization; every x-amz-* header must be signed.", truncate(k, 64))
	}
	return nil
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

// declaredPayloadHash returns the payload hash the client declared in
// X-Amz-Content-Sha256 when it is one (64 hex digits), or "" when there is
// none or it is UNSIGNED-PAYLOAD (or anything else VerifyBody must judge
// against the body).
func declaredPayloadHash(r *http.Request) (string, *Error) {
	declared := r.Header.Values(headerContentSHA256)
	switch {
	case len(declared) == 0:
		return "", nil
	case len(declared) > 1:
		return "", newError(KindMalformed, "Only one X-Amz-Content-Sha256 header is allowed.")
	}
	if b, err := hex.DecodeString(declared[0]); err != nil || len(b) != sha256.Size {
		return "", nil
	}
	return declared[0], nil
}

// payloadHash returns the payload hash to put in the canonical request
// given the body's real hash: the real hash, or X-Amz-Content-Sha256 when
// the client sent one and it matches. UNSIGNED-PAYLOAD is not honoured:
// Stoke always checks the body, so such a request only verifies if it was
// signed over the real hash.
func payloadHash(r *http.Request, real string) (string, *Error) {
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
