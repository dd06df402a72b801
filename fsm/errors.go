package fsm

import (
	"errors"
	"fmt"
)

// Code classifies why the state machine refused a command. The node's API
// layer translates codes into Lambda exceptions; the codes themselves know
// nothing of HTTP.
type Code int32

const (
	CodeOK Code = iota
	// CodeInvalid: the command is malformed or breaks a rule of the model.
	CodeInvalid
	// CodeNotFound: the entity the command names does not exist.
	CodeNotFound
	// CodeConflict: the entity already exists, or a reference prevents the change.
	CodeConflict
	// CodePrecondition: an expected RevisionId or CodeSha256 no longer matches.
	CodePrecondition
	// CodeLimitExceeded: the change would break an account limit.
	CodeLimitExceeded
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "OK"
	case CodeInvalid:
		return "Invalid"
	case CodeNotFound:
		return "NotFound"
	case CodeConflict:
		return "Conflict"
	case CodePrecondition:
		return "Precondition"
	case CodeLimitExceeded:
		return "LimitExceeded"
	}
	return fmt.Sprintf("Code(%d)", int32(c))
}

// Error is a command refusal. Refusals are deterministic: every replica
// refuses the same entry with the same Error.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code carried by err, CodeOK for nil, and CodeInvalid for
// an error that is not an *Error.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInvalid
}

// IsNotFound reports whether err is a CodeNotFound refusal.
func IsNotFound(err error) bool { return CodeOf(err) == CodeNotFound }
