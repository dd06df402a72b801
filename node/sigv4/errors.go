package sigv4

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies a verification failure. The HTTP layer chooses the status
// code and exception name from it; Error.Message carries AWS's wording.
type Kind int

// The kinds of failure, each with its sentinel error (see Kind.Sentinel).
const (
	// KindMissingAuth: the request carries neither an Authorization header
	// nor X-Amz-Algorithm. AWS: MissingAuthenticationTokenException.
	KindMissingAuth Kind = iota + 1
	// KindMalformed: the signature fields are incomplete or unparsable, use
	// an unsupported algorithm, or leave host (or the security token)
	// unsigned, or an x-amz-* header is not signed.
	// AWS: IncompleteSignatureException.
	KindMalformed
	// KindWrongScope: the credential scope names another region, service
	// or date than the request. AWS: InvalidSignatureException.
	KindWrongScope
	// KindExpired: X-Amz-Date is outside the skew window, or a presigned
	// request is past X-Amz-Expires. AWS: InvalidSignatureException.
	KindExpired
	// KindUnknownKey: the access key id is unknown or inactive.
	// AWS: UnrecognizedClientException.
	KindUnknownKey
	// KindPayloadMismatch: X-Amz-Content-Sha256 does not match the body.
	// AWS: InvalidSignatureException.
	KindPayloadMismatch
	// KindSignatureMismatch: the recomputed signature differs.
	// AWS: InvalidSignatureException.
	KindSignatureMismatch
	// KindBodyTooLarge: the body exceeds Config.MaxBodyBytes.
	// AWS: RequestTooLargeException (413).
	KindBodyTooLarge
	// KindCredentialStore: the CredentialStore failed for a reason other
	// than an unknown key. Not the client's fault: answer 5xx.
	KindCredentialStore
)

// Sentinel errors, one per Kind; every *Error matches its kind's sentinel
// with errors.Is.
var (
	ErrMissingAuth       = errors.New("sigv4: missing authentication")
	ErrMalformed         = errors.New("sigv4: malformed signature")
	ErrWrongScope        = errors.New("sigv4: wrong credential scope")
	ErrExpired           = errors.New("sigv4: signature expired")
	ErrUnknownAccessKey  = errors.New("sigv4: unknown or inactive access key")
	ErrPayloadMismatch   = errors.New("sigv4: payload hash mismatch")
	ErrSignatureMismatch = errors.New("sigv4: signature mismatch")
	ErrBodyTooLarge      = errors.New("sigv4: body too large")
	ErrCredentialStore   = errors.New("sigv4: credential store failed")
)

// The messages AWS sends for the failures whose wording is fixed.
const (
	msgMissingAuth       = "Missing Authentication Token"
	msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgUnknownKey        = "The security token included in the request is invalid."
	msgPayloadMismatch   = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgCredentialStore   = "An internal error occurred while checking the request's credentials."
)

// String names the kind for logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case KindMissingAuth:
		return "missing_auth"
	case KindMalformed:
		return "malformed"
	case KindWrongScope:
		return "wrong_scope"
	case KindExpired:
		return "expired"
	case KindUnknownKey:
		return "unknown_key"
	case KindPayloadMismatch:
		return "payload_mismatch"
	case KindSignatureMismatch:
		return "signature_mismatch"
	case KindBodyTooLarge:
		return "body_too_large"
	case KindCredentialStore:
		return "credential_store"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// AWSException is the exception name AWS itself returns for this kind. Stoke
// may answer with another (AccessDeniedException); the name is here so the
// caller can choose.
func (k Kind) AWSException() string {
	switch k {
	case KindMissingAuth:
		return "MissingAuthenticationTokenException"
	case KindMalformed:
		return "IncompleteSignatureException"
	case KindUnknownKey:
		return "UnrecognizedClientException"
	case KindBodyTooLarge:
		return "RequestTooLargeException"
	case KindCredentialStore:
		return "ServiceException"
	}
	return "InvalidSignatureException"
}

// HTTPStatus is the status code AWS answers this kind with: 413 for a body
// over the limit, 500 when the credential store failed (not the client's
// fault), 403 for every other failure to authenticate.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindCredentialStore:
		return http.StatusInternalServerError
	}
	return http.StatusForbidden
}

// Sentinel returns the sentinel error of the kind.
func (k Kind) Sentinel() error {
	switch k {
	case KindMissingAuth:
		return ErrMissingAuth
	case KindMalformed:
		return ErrMalformed
	case KindWrongScope:
		return ErrWrongScope
	case KindExpired:
		return ErrExpired
	case KindUnknownKey:
		return ErrUnknownAccessKey
	case KindPayloadMismatch:
		return ErrPayloadMismatch
	case KindSignatureMismatch:
		return ErrSignatureMismatch
	case KindBodyTooLarge:
		return ErrBodyTooLarge
	case KindCredentialStore:
		return ErrCredentialStore
	}
	return nil
}

// Error is every failure Verify returns. Message is safe to send to the
// client (it never contains the secret or the expected signature).
type Error struct {
	Kind    Kind
	Message string
	// Cause is the underlying error, if any (for example the
	// CredentialStore's). It is for logs, not for clients.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("sigv4: %s: %s: %v", e.Kind, e.Message, e.Cause)
	}
	return fmt.Sprintf("sigv4: %s: %s", e.Kind, e.Message)
}

// Unwrap exposes the kind's sentinel and the cause to errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	errs := []error{e.Kind.Sentinel()}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

func newError(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}
