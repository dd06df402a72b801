package runtime

import (
	"fmt"
	"time"
)

// Lambda's limits that the runtime enforces.
const (
	// MaxResponseBytes is the largest response a function may return
	// (Lambda's 6 MB synchronous cap, exactly).
	MaxResponseBytes = 6291556
	// MinMemoryMB and MaxMemoryMB bound FunctionSpec.MemoryMB.
	MinMemoryMB = 128
	MaxMemoryMB = 10240
	// DefaultEphemeralStorageMB is the /tmp size when the spec leaves it 0.
	DefaultEphemeralStorageMB = 512
	// MemoryPerVCPU is the memory size that buys one full vCPU.
	MemoryPerVCPU = 1769
	// PidsLimit and NofileLimit are Lambda's per-environment process/thread
	// and file descriptor limits.
	PidsLimit   = 1024
	NofileLimit = 1024
	// LogTailBytes is how much of an invocation's log Result.LogTail keeps.
	LogTailBytes = 4096
	// MaxLayers bounds FunctionSpec.LayerIDs, as Lambda does. The trees
	// reach the sandbox init as descriptors in one control message, which
	// has room for a bounded number.
	MaxLayers = 5
)

// FunctionSpec is everything the pool needs to know about one function
// version to create a sandbox for it. It is treated as immutable.
type FunctionSpec struct {
	// Key identifies the sandbox flavour: sandboxes are reused only for an
	// invocation whose spec has an identical Key. Callers build it from the
	// function, version, code and configuration revision, so any change to
	// the fields below must change Key.
	Key string

	FunctionName string // e.g. "my-function"
	Version      string // "$LATEST" or a version number
	AccountID    string // 12 digits
	Region       string // e.g. "us-east-1"

	// Runtime is one of Runtimes(); Handler is its handler string
	// ("file.function" for Python and Node; informational for provided).
	Runtime string
	Handler string

	MemoryMB           int           // 128..10240
	EphemeralStorageMB int           // size of /tmp; 0 means 512
	Timeout            time.Duration // per invocation, 1 s..900 s

	// Environment holds the function's own variables. Reserved Lambda
	// variables set by the runtime win over these.
	Environment map[string]string

	// CodeID names the code tree in PoolConfig.Code; LayerIDs name layer
	// trees, merged at /opt in order (later layers win).
	CodeID   string
	LayerIDs []string

	// LogGroup is AWS_LAMBDA_LOG_GROUP_NAME; empty means /aws/lambda/<name>.
	LogGroup string
}

func (f FunctionSpec) logGroup() string {
	if f.LogGroup != "" {
		return f.LogGroup
	}
	return "/aws/lambda/" + f.FunctionName
}

func (f FunctionSpec) version() string {
	if f.Version == "" {
		return "$LATEST"
	}
	return f.Version
}

func (f FunctionSpec) ephemeralMB() int {
	if f.EphemeralStorageMB == 0 {
		return DefaultEphemeralStorageMB
	}
	return f.EphemeralStorageMB
}

// validate checks f and returns its runtime, once that runtime is known to
// be usable on this host (runtimeDef.check).
func (f FunctionSpec) validate() (runtimeDef, error) {
	switch {
	case f.Key == "":
		return runtimeDef{}, fmt.Errorf("%w: empty Key", ErrInvalidFunction)
	case f.FunctionName == "":
		return runtimeDef{}, fmt.Errorf("%w: empty FunctionName", ErrInvalidFunction)
	case f.MemoryMB < MinMemoryMB || f.MemoryMB > MaxMemoryMB:
		return runtimeDef{}, fmt.Errorf("%w: MemoryMB %d outside %d..%d", ErrInvalidFunction, f.MemoryMB, MinMemoryMB, MaxMemoryMB)
	case f.EphemeralStorageMB != 0 && (f.EphemeralStorageMB < 512 || f.EphemeralStorageMB > 10240):
		return runtimeDef{}, fmt.Errorf("%w: EphemeralStorageMB %d outside 512..10240", ErrInvalidFunction, f.EphemeralStorageMB)
	case f.Timeout < time.Second || f.Timeout > 900*time.Second:
		return runtimeDef{}, fmt.Errorf("%w: Timeout %v outside 1s..900s", ErrInvalidFunction, f.Timeout)
	case f.CodeID == "":
		return runtimeDef{}, fmt.Errorf("%w: empty CodeID", ErrInvalidFunction)
	case len(f.LayerIDs) > MaxLayers:
		return runtimeDef{}, fmt.Errorf("%w: %d layers, at most %d", ErrInvalidFunction, len(f.LayerIDs), MaxLayers)
	}
	def, ok := lookupRuntime(f.Runtime)
	if !ok {
		return runtimeDef{}, fmt.Errorf("%w: %q (supported: %v)", ErrUnsupportedRuntime, f.Runtime, Runtimes())
	}
	return def, def.check()
}

// Invocation is one event for a function.
type Invocation struct {
	RequestID          string
	Payload            []byte
	InvokedFunctionARN string
	// ClientContext is the JSON text sent in Lambda-Runtime-Client-Context
	// (the frontend base64-decodes X-Amz-Client-Context into it).
	ClientContext   string
	CognitoIdentity string // JSON text for Lambda-Runtime-Cognito-Identity
	TraceID         string // Lambda-Runtime-Trace-Id
	// Deadline is when the invocation times out; zero means Timeout after
	// the event is handed to the runtime.
	Deadline time.Time
	// NoQueue makes Invoke return ErrSaturated at once, instead of queueing,
	// when no idle sandbox and no memory for a new one is available (the
	// caller spills the invocation to another node).
	NoQueue bool
	// WarmOnly makes Invoke return ErrNoWarmSandbox at once unless an idle
	// sandbox of the Key is free: no cold start, no queueing (the caller
	// looks for a warm sandbox on other nodes before it allows one).
	WarmOnly bool
}

// Result is the outcome of an invocation that reached a sandbox. Function
// failures are Results with FunctionError set, never Go errors.
type Result struct {
	// Payload is the function's response, or Lambda's error JSON
	// ({"errorType","errorMessage",...}) when FunctionError is set.
	Payload []byte
	// FunctionError is "" or "Unhandled" (X-Amz-Function-Error).
	FunctionError string
	// LogTail is the last 4 KB of this invocation's log (X-Amz-Log-Result).
	LogTail []byte
	// ColdStart is true when a sandbox was created for this invocation.
	ColdStart    bool
	InitDuration time.Duration // Init phase of a cold start; 0 when warm
	Duration     time.Duration // from the event handed over to the response
	// BilledDurationMs is Duration rounded up to the millisecond (plus the
	// Init duration for provided runtimes, as Lambda bills them).
	BilledDurationMs int64
	// MaxMemoryUsedMB is the sandbox's memory high-water mark (cgroup peak).
	MaxMemoryUsedMB int
	SandboxID       string
}

// SandboxState is the life stage of a sandbox.
type SandboxState int

const (
	StateInitializing SandboxState = iota // created, Init phase running
	StateIdle                             // warm, waiting for an invocation
	StateBusy                             // running an invocation
)

func (s SandboxState) String() string {
	switch s {
	case StateInitializing:
		return "initializing"
	case StateIdle:
		return "idle"
	case StateBusy:
		return "busy"
	}
	return fmt.Sprintf("SandboxState(%d)", int(s))
}

// Stats is a snapshot of a pool, cheap enough to take on every invocation.
type Stats struct {
	Initializing, Idle, Busy int
	MemoryUsedMB             int // sum of MemoryMB over live sandboxes
	MemoryBudgetMB           int
	Queued                   int // invocations waiting for a sandbox
	InitQueued               int // cold starts waiting for an Init slot
	ReadyShells              int // pre-created empty shells
	Isolation                Isolation
	// ByKey has one entry per FunctionSpec.Key with live sandboxes.
	ByKey map[string]KeyStats
}

// KeyStats counts one Key's sandboxes.
type KeyStats struct {
	Initializing, Idle, Busy int
}
