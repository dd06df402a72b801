package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stokehq/stoke/chaos/history"
	"github.com/stokehq/stoke/node"
)

// ErrConnectionRefused is the Fail code of a request no node received.
const ErrConnectionRefused = "ConnectionRefused"

// newHTTPClient returns an HTTP client with its own connection pool, so a
// dead node's broken connections never delay calls to other nodes.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// NewLambda returns an SDK client for endpoint signed with creds that
// makes exactly one attempt per call, and the function that closes its
// idle connections once the caller is done with it.
func NewLambda(endpoint string, creds node.Credentials) (*lambda.Client, func()) {
	hc := newHTTPClient()
	return lambda.New(lambda.Options{
		Region:       creds.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   hc,
	}), hc.CloseIdleConnections
}

// Classify maps an SDK call's error onto an outcome and the text recorded
// with it (the exception name for Fail).
func Classify(err error) (history.Outcome, string) {
	if err == nil {
		return history.OK, ""
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status := re.HTTPStatusCode()
		code := fmt.Sprint(status)
		var ae smithy.APIError
		if errors.As(err, &ae) {
			code = ae.ErrorCode()
		}
		if status >= 400 && status < 500 {
			return history.Fail, code
		}
		if status >= 500 {
			return history.Unknown, fmt.Sprintf("%d %s", status, code)
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return history.Fail, ErrConnectionRefused
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return history.Unknown, "timeout"
	case errors.Is(err, context.Canceled):
		return history.Unknown, "canceled"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "EOF"):
		return history.Unknown, "connection lost"
	}
	return history.Unknown, err.Error()
}

// end records p's outcome from err, with output when acknowledged.
func end(p *history.Pending, err error, output any) history.Op {
	outcome, text := Classify(err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		p.Detailed(apiErr.ErrorMessage())
	}
	switch outcome {
	case history.OK:
		return p.OK(output)
	case history.Fail:
		return p.Fail(text)
	}
	return p.Unknown(text)
}
