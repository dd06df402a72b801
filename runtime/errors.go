package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Platform errors. Function failures are never Go errors: they come back as
// a Result with FunctionError set.
var (
	// ErrSaturated: no idle sandbox and no memory for a new one, and the
	// invocation asked not to queue.
	ErrSaturated = errors.New("runtime: node saturated")
	// ErrQueueFull: the wait queue already holds MaxQueue invocations.
	ErrQueueFull = errors.New("runtime: invocation queue full")
	// ErrNoWarmSandbox: the invocation asked for a warm sandbox only
	// (Invocation.WarmOnly) and no idle sandbox of its Key was free.
	ErrNoWarmSandbox = errors.New("runtime: no idle warm sandbox")
	// ErrQueueTimeout: the invocation waited QueueTimeout for a sandbox.
	ErrQueueTimeout = errors.New("runtime: timed out waiting for a sandbox")
	// ErrColdStartsBusy: the invocation needed a cold start and could not
	// get one of the node's MaxConcurrentInits slots within InitSlotWait
	// (or MaxQueue cold starts were already waiting). The
	// platform is overloaded; the function has not run.
	ErrColdStartsBusy = errors.New("runtime: too many cold starts in progress on this node")
	// ErrSandboxUnsupported: full isolation is impossible on this machine
	// (the wrapped message says what is missing).
	ErrSandboxUnsupported = errors.New("runtime: sandboxes unsupported on this machine")
	// ErrUnsupportedRuntime: FunctionSpec.Runtime is not one this node runs.
	ErrUnsupportedRuntime = errors.New("runtime: unsupported runtime")
	// ErrInvalidFunction: a FunctionSpec field is out of range.
	ErrInvalidFunction = errors.New("runtime: invalid function spec")
	// ErrInvalidConfig: PoolConfig.Validate failed.
	ErrInvalidConfig = errors.New("runtime: invalid pool config")
	// ErrClosed: the pool is closed.
	ErrClosed = errors.New("runtime: pool closed")
	// ErrCode: the CodeSource could not provide the code or a layer.
	ErrCode = errors.New("runtime: code unavailable")
	// ErrInitFailed: Prewarm's sandbox ran the function's Init, which
	// failed; the wrapped text is the function's error payload.
	ErrInitFailed = errors.New("init failed")
	// ErrSandboxStart: the platform failed to create a sandbox (not the
	// function's fault: a mount, cgroup or exec step failed).
	ErrSandboxStart = errors.New("runtime: sandbox start failed")
)

// Lambda's error types for function failures.
const (
	ErrTypeTimeout          = "Sandbox.Timedout"
	ErrTypeExit             = "Runtime.ExitError"
	ErrTypeResponseTooLarge = "Function.ResponseSizeTooLarge"
	ErrTypeUnknown          = "Runtime.Unknown"
	FunctionErrorUnhandled  = "Unhandled"
)

// errorBody renders Lambda's error JSON. The key order (errorType first)
// matches what Lambda's own platform errors look like.
func errorBody(errType, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{errType, msg})
	return b
}

func timeoutBody(requestID string, timeout time.Duration) []byte {
	return errorBody(ErrTypeTimeout, fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", requestID, timeout.Seconds()))
}

func exitBody(requestID string, exit string) []byte {
	return errorBody(ErrTypeExit, fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", requestID, exit))
}

// tooLargeBody words the error like Lambda; size is the declared length of
// the refused response, or -1 when the runtime sent no Content-Length (the
// body is never read past the cap, so its true size stays unknown).
func tooLargeBody(size int64) []byte {
	if size < 0 {
		return errorBody(ErrTypeResponseTooLarge, fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes))
	}
	return errorBody(ErrTypeResponseTooLarge, fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", size, MaxResponseBytes))
}
