// Package sigv4 verifies AWS Signature Version 4 on requests that reach
// Stoke's Lambda-compatible HTTP API, so that the AWS CLI, boto3 and the AWS
// SDKs authenticate against Stoke exactly as they do against AWS.
//
// A Verifier recomputes the signature of an incoming request from its method,
// its raw escaped path, its query string, the headers the client says it
// signed and the SHA-256 of the body, then compares it in constant time with
// the one the client sent. Verification comes in two steps so that a server
// can refuse a request before reading its body: VerifyHeaders checks
// everything the request line and headers can prove (the signature fields,
// scope, time, that every x-amz-* header is signed, that the key exists, and
// the signature itself when the client declared its payload hash in
// X-Amz-Content-Sha256), and Pending.VerifyBody finishes with the body.
// Both forms real clients use are accepted: the Authorization header
// ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") and
// the presigned query string (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
// X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature). Secrets come from a
// CredentialStore the caller implements over the replicated key table; the
// package keeps no state of its own and is safe for concurrent use.
//
// Failures are *Error values carrying a Kind (for errors.Is and for choosing
// the exception name) and the message text AWS uses for the same failure,
// so the HTTP layer can answer with AWS's wording while using its own
// status code and exception (Stoke answers 403 AccessDeniedException-shaped
// errors for authentication failures).
package sigv4
