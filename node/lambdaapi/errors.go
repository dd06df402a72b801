package lambdaapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/stokehq/stoke/fsm"
)

// Error is an API error in Lambda's shape: a status code, the exception name
// sent in X-Amzn-ErrorType, and a message. The AWS SDKs and CLI turn it into
// the typed exception of that name.
type Error struct {
	Status  int
	Type    string
	Message string
	// Reason is set on TooManyRequestsException (e.g.
	// ConcurrentInvocationLimitExceeded); RetryAfter adds a Retry-After
	// header (seconds) when positive.
	Reason     string
	RetryAfter int
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

func newError(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Constructors for every exception the API raises. Some exist before the
// operation that raises them does.
//
//lint:file-ignore U1000 every Lambda exception keeps its constructor, used or not yet
func invalidParameter(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "InvalidParameterValueException", format, args...)
}
func invalidRequestContent(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "InvalidRequestContentException", format, args...)
}

//lint:ignore U1000 one constructor per exception LAMBDA-API.md lists, used as the API grows
func resourceInUse(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "ResourceInUseException", format, args...)
}
func codeStorageExceeded(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "CodeStorageExceededException", format, args...)
}
func accessDenied(format string, args ...any) *Error {
	return newError(http.StatusForbidden, "AccessDeniedException", format, args...)
}
func notFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "ResourceNotFoundException", format, args...)
}
func conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, "ResourceConflictException", format, args...)
}
func preconditionFailed(format string, args ...any) *Error {
	return newError(http.StatusPreconditionFailed, "PreconditionFailedException", format, args...)
}

// requestTimeout is a body that did not arrive in time. Lambda's model has
// no such exception; the name is the one the SDKs' standard retry modes
// treat as transient (botocore, aws-sdk-go-v2), so they retry it.
func requestTimeout(format string, args ...any) *Error {
	return newError(http.StatusRequestTimeout, "RequestTimeoutException", format, args...)
}
func requestTooLarge(format string, args ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, "RequestTooLargeException", format, args...)
}

//lint:ignore U1000 one constructor per exception LAMBDA-API.md lists, used as the API grows
func unsupportedMediaType(format string, args ...any) *Error {
	return newError(http.StatusUnsupportedMediaType, "UnsupportedMediaTypeException", format, args...)
}
func serviceError(format string, args ...any) *Error {
	return newError(http.StatusInternalServerError, "ServiceException", format, args...)
}

//lint:ignore U1000 one constructor per exception LAMBDA-API.md lists, used as the API grows
func invalidZip(format string, args ...any) *Error {
	return newError(http.StatusBadGateway, "InvalidZipFileException", format, args...)
}

//lint:ignore U1000 one constructor per exception LAMBDA-API.md lists, used as the API grows
func resourceNotReady(format string, args ...any) *Error {
	return newError(http.StatusBadGateway, "ResourceNotReadyException", format, args...)
}

//lint:ignore U1000 one constructor per exception LAMBDA-API.md lists, used as the API grows
func notImplemented(operation string) *Error {
	return invalidRequestContent("%s is not supported by Stoke yet", operation)
}

// Throttle reasons Lambda sends with TooManyRequestsException.
const (
	ReasonConcurrentInvocationLimitExceeded         = "ConcurrentInvocationLimitExceeded"
	ReasonReservedFunctionConcurrentInvocationLimit = "ReservedFunctionConcurrentInvocationLimitExceeded"
	ReasonCallerRateLimitExceeded                   = "CallerRateLimitExceeded"
	// ReasonFunctionInvocationRateLimitExceeded: Lambda's scaling-rate
	// throttle; Stoke sends it when a burst of cold starts outruns what
	// the node can initialise.
	ReasonFunctionInvocationRateLimitExceeded = "FunctionInvocationRateLimitExceeded"
)

// TooManyRequests returns a 429 with Lambda's reason and a Retry-After.
func TooManyRequests(reason, message string, retryAfter int) *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: "TooManyRequestsException",
		Message: message, Reason: reason, RetryAfter: retryAfter}
}

// errorBody is the JSON body of an error. SDKs read "message" (and also
// accept "Message"); "Type" is "User" for client errors as Lambda sends it.
type errorBody struct {
	Type    string `json:"Type"`
	Message string `json:"message"`
	Reason  string `json:"Reason,omitempty"`
}

func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-ErrorType", e.Type)
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	kind := "User"
	if e.Status >= 500 {
		kind = "Service"
	}
	_ = json.NewEncoder(w).Encode(errorBody{Type: kind, Message: e.Message, Reason: e.Reason})
}

// fromFSM translates a state-machine refusal into the Lambda exception a
// user of the real service would get for it.
func fromFSM(err error) *Error {
	var fe *fsm.Error
	if !errors.As(err, &fe) {
		return nil
	}
	switch fe.Code {
	case fsm.CodeNotFound:
		return notFound("%s", fe.Message)
	case fsm.CodeConflict:
		return conflict("%s", fe.Message)
	case fsm.CodePrecondition:
		return preconditionFailed("%s", fe.Message)
	case fsm.CodeLimitExceeded, fsm.CodeInvalid:
		return invalidParameter("%s", fe.Message)
	}
	return serviceError("%s", fe.Message)
}
