package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// TestPoolErrorsAreThrottlesWithTheirCause: the pool's overload errors
// reach clients as 429 TooManyRequestsException whose Reason names the
// cause; a burst of cold starts is Lambda's scaling-rate throttle, not the
// account's concurrency and never the function's error.
func TestPoolErrorsAreThrottlesWithTheirCause(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{fmt.Errorf("%w (8 initialising)", runtime.ErrColdStartsBusy), lambdaapi.ReasonFunctionInvocationRateLimitExceeded},
		{runtime.ErrQueueTimeout, lambdaapi.ReasonConcurrentInvocationLimitExceeded},
		{runtime.ErrQueueFull, lambdaapi.ReasonConcurrentInvocationLimitExceeded},
	} {
		l := &localInvoker{nodeID: "n1", log: discardLogger()}
		var apiErr *lambdaapi.Error
		if !errors.As(l.platformError(tc.err, &lambdaapi.InvokeRequest{RequestID: "r1"}), &apiErr) || apiErr.Status != 429 || apiErr.Type != "TooManyRequestsException" || apiErr.Reason != tc.reason {
			t.Errorf("platformError(%v) = %+v, want 429 TooManyRequestsException %s", tc.err, apiErr, tc.reason)
		}
	}
}
