package lambdaapi

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/stokehq/stoke/fsm"
)

// Limits Lambda documents and Stoke enforces on the API.
const (
	MaxEnvironmentBytes     = 4096
	MaxDescriptionLen       = 256
	MaxHandlerLen           = 128
	MaxSyncPayloadBytes     = 6 * 1024 * 1024 // 6,291,456
	MaxAsyncPayloadBytes    = 1024 * 1024
	MaxCreateFunctionBytes  = 70167211
	MaxClientContextBytes   = 3583
	MaxTagKeyLen            = 128
	MaxTagValueLen          = 256
	DefaultMemoryMB         = 128
	DefaultTimeoutS         = 3
	DefaultEphemeralMB      = 512
	defaultListPageSize     = 50
	maxListPageSize         = 10000
	maxControlRequestBytes  = 1 << 20
	defaultArchitecture     = "x86_64"
	unsupportedArchitecture = "arm64"
)

var (
	handlerRE = regexp.MustCompile(`^[^\s]+$`)
	roleRE    = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	envKeyRE  = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
)

// reservedEnvKeys are the variables Lambda sets itself and refuses to let a
// function configuration override.
var reservedEnvKeys = []string{
	"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
	"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
	"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

func constraint(value any, member, rule string) *Error {
	return invalidParameter("1 validation error detected: Value '%v' at '%s' failed to satisfy constraint: %s", value, member, rule)
}

func (h *Handler) checkRuntime(runtime string) *Error {
	if slices.Contains(h.cfg.Runtimes, runtime) {
		return nil
	}
	return invalidParameter("Value %s at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [%s] (the runtimes this Stoke cluster runs)",
		runtime, strings.Join(h.cfg.Runtimes, ", "))
}

func checkHandler(handler string) *Error {
	if len(handler) > MaxHandlerLen {
		return constraint(handler, "handler", "Member must have length less than or equal to 128")
	}
	if !handlerRE.MatchString(handler) {
		return constraint(handler, "handler", `Member must satisfy regular expression pattern: [^\s]+`)
	}
	return nil
}

func checkRole(role string) *Error {
	if !roleRE.MatchString(role) {
		return constraint(role, "role", `Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`)
	}
	return nil
}

func checkMemory(mb int32) *Error {
	if mb < fsm.MinMemoryMB {
		return constraint(mb, "memorySize", "Member must have value greater than or equal to 128")
	}
	if mb > fsm.MaxMemoryMB {
		return constraint(mb, "memorySize", "Member must have value less than or equal to 10240")
	}
	return nil
}

func checkTimeout(s int32) *Error {
	if s < fsm.MinTimeoutS {
		return constraint(s, "timeout", "Member must have value greater than or equal to 1")
	}
	if s > fsm.MaxTimeoutS {
		return constraint(s, "timeout", "Member must have value less than or equal to 900")
	}
	return nil
}

func checkEphemeral(mb int32) *Error {
	if mb < fsm.MinEphemeralMB || mb > fsm.MaxEphemeralMB {
		return constraint(mb, "ephemeralStorage.size", "Member must have value between 512 and 10240")
	}
	return nil
}

func checkDescription(d string) *Error {
	if utf8.RuneCountInString(d) > MaxDescriptionLen {
		return constraint(truncate(d, 32), "description", "Member must have length less than or equal to 256")
	}
	return nil
}

func checkArchitectures(archs []string) *Error {
	if len(archs) == 0 {
		return nil
	}
	if len(archs) != 1 {
		return constraint(archs, "architectures", "Member must have length less than or equal to 1")
	}
	switch archs[0] {
	case defaultArchitecture:
		return nil
	case unsupportedArchitecture:
		return invalidParameter("Architecture arm64 is not supported by this Stoke cluster; its workers run x86_64")
	}
	return constraint(archs, "architectures", "Member must satisfy enum value set: [x86_64, arm64]")
}

// checkEnvironment applies Lambda's rules to environment variables and
// returns their JSON encoding (what is sealed and what the 4 KB limit
// measures).
func checkEnvironment(vars map[string]string) ([]byte, *Error) {
	var reserved []string
	for k := range vars {
		if !envKeyRE.MatchString(k) {
			return nil, constraint(k, "environment.variables", "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+")
		}
		if slices.Contains(reservedEnvKeys, k) {
			reserved = append(reserved, k)
		}
	}
	if len(reserved) > 0 {
		sort.Strings(reserved)
		return nil, invalidParameter("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s",
			strings.Join(reserved, ", "))
	}
	js := envJSON(vars)
	if len(js) > MaxEnvironmentBytes {
		return nil, invalidParameter("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %s",
			truncate(string(js), 512))
	}
	return js, nil
}

func checkTags(tags map[string]string) *Error {
	if len(tags) > fsm.MaxTags {
		return invalidParameter("Number of tags exceeds resource tag limit of %d", fsm.MaxTags)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > MaxTagKeyLen || strings.HasPrefix(strings.ToLower(k), "aws:") {
			return invalidParameter("Tag key %q is not valid: 1-128 characters, not starting with aws:", truncate(k, 64))
		}
		if utf8.RuneCountInString(v) > MaxTagValueLen {
			return invalidParameter("Tag value for key %q is longer than 256 characters", truncate(k, 64))
		}
	}
	return nil
}

// checkSupported refuses the code sources Stoke does not take.
func (c *functionCode) checkSupported() *Error {
	if c.ImageURI != nil {
		return invalidParameter("Container image functions (ImageUri) are not supported by Stoke; upload a .zip package in ZipFile")
	}
	if c.S3Bucket != nil || c.S3Key != nil || c.S3ObjectVersion != nil {
		return invalidParameter("Code in S3 is not supported by Stoke; upload the .zip package inline in ZipFile")
	}
	return nil
}
