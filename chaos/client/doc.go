// Package client drives a chaos cluster through its public API and records
// every operation in a history.Recorder: the Lambda API through
// aws-sdk-go-v2 (one attempt per operation, no SDK retries, so each
// recorded operation is exactly one request), and Stoke's admin endpoints
// through SigV4-signed raw HTTP. Each recording client is one sequential
// caller bound to one node.
//
// Outcomes are classified once, here: a 2xx answer is OK; a 4xx answer is
// Fail with the exception name (the request had no effect); a refused
// connection is Fail too (it never reached a node); a 5xx answer, a
// timeout or a broken connection is Unknown, because the write may have
// been committed, or may still be.
package client
