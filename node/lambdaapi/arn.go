package lambdaapi

import (
	"regexp"
	"strconv"
	"strings"
)

// VersionLatest is the qualifier of a function's unpublished configuration.
const VersionLatest = "$LATEST"

var (
	functionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	qualifierRE    = regexp.MustCompile(`^(\$LATEST|[a-zA-Z0-9_-]{1,128})$`)
	aliasNameRE    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
	versionRE      = regexp.MustCompile(`^[0-9]{1,20}$`)
	accountIDRE    = regexp.MustCompile(`^[0-9]{12}$`)
	partitionRE    = regexp.MustCompile(`^aws[a-zA-Z-]*$`)
)

// functionRef is a function named in a request: by name, partial ARN or
// full ARN, with an optional qualifier.
type functionRef struct {
	AccountID string // empty when the reference did not name one
	Name      string
	Qualifier string // "", "$LATEST", a version number or an alias name
}

// parseFunctionRef accepts every form Lambda does:
//
//	my-function, my-function:qualifier
//	123456789012:function:my-function[:qualifier]
//	arn:aws:lambda:REGION:123456789012:function:my-function[:qualifier]
func (h *Handler) parseFunctionRef(raw string) (functionRef, *Error) {
	bad := func() (functionRef, *Error) {
		return functionRef{}, invalidParameter(
			"1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: "+
				"Member must satisfy regular expression pattern: "+
				`(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z0-9-]+:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?`,
			truncate(raw, 200))
	}
	if raw == "" || len(raw) > 256 {
		return bad()
	}
	parts := strings.Split(raw, ":")
	var ref functionRef
	switch {
	case parts[0] == "arn":
		// arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
		if len(parts) < 7 || len(parts) > 8 || !partitionRE.MatchString(parts[1]) || parts[2] != "lambda" || parts[5] != "function" {
			return bad()
		}
		if parts[3] != h.cfg.Region {
			return functionRef{}, invalidParameter("Region %q in the function ARN does not match this cluster's region %q", parts[3], h.cfg.Region)
		}
		ref = functionRef{AccountID: parts[4], Name: parts[6]}
		if len(parts) == 8 {
			ref.Qualifier = parts[7]
			if ref.Qualifier == "" {
				return bad()
			}
		}
	case len(parts) >= 3 && parts[1] == "function":
		if len(parts) > 4 {
			return bad()
		}
		ref = functionRef{AccountID: parts[0], Name: parts[2]}
		if len(parts) == 4 {
			ref.Qualifier = parts[3]
		}
	case len(parts) <= 2:
		ref.Name = parts[0]
		if len(parts) == 2 {
			ref.Qualifier = parts[1]
		}
	default:
		return bad()
	}
	if ref.AccountID != "" && !accountIDRE.MatchString(ref.AccountID) {
		return bad()
	}
	if !functionNameRE.MatchString(ref.Name) || (ref.Qualifier != "" && !qualifierRE.MatchString(ref.Qualifier)) {
		return bad()
	}
	return ref, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// functionARN is the unqualified ARN of a function.
func (h *Handler) functionARN(account, name string) string {
	return FunctionARN(h.cfg.Region, account, name)
}

// qualifiedARN appends a qualifier (version or alias) to a function ARN.
func (h *Handler) qualifiedARN(account, name, qualifier string) string {
	if qualifier == "" {
		return h.functionARN(account, name)
	}
	return h.functionARN(account, name) + ":" + qualifier
}

// isVersionNumber reports whether q names a published version.
func isVersionNumber(q string) bool { return versionRE.MatchString(q) }

// parseVersion returns the published version q names. ok is false when
// q names no version that can exist: not a number, past int64, or 0 (the
// state machine reads version 0 as "no version": the whole function).
func parseVersion(q string) (n int64, ok bool) {
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
