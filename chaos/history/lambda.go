package history

// The vocabulary of recorded Lambda operations: the kinds and the Input and
// Output values recording clients store and checkers interpret.

// Control-plane operation kinds. Each touches one function (Op.Key).
const (
	CreateFunction = "CreateFunction"
	UpdateConfig   = "UpdateFunctionConfiguration"
	PublishVersion = "PublishVersion"
	CreateAlias    = "CreateAlias"
	DeleteFunction = "DeleteFunction"
	GetFunction    = "GetFunction"
	GetAlias       = "GetAlias"
)

// Data-plane operation kinds.
const (
	// Invoke is a synchronous invocation (RequestResponse).
	Invoke = "Invoke"
	// InvokeAsync is an Event invocation; OK means the cluster answered 202.
	InvokeAsync = "InvokeAsync"
)

// Error codes of definitive refusals, as Lambda names them.
const (
	ErrNotFound = "ResourceNotFoundException"
	ErrConflict = "ResourceConflictException"
)

// ControlInput is the Input of a control-plane operation.
type ControlInput struct {
	// Description is what CreateFunction and UpdateFunctionConfiguration
	// set; the workload makes every value unique, so a read names its writer.
	Description string `json:"description,omitempty"`
	// Qualifier selects a published version for GetFunction ("" is $LATEST).
	Qualifier string `json:"qualifier,omitempty"`
	// Alias and Version are CreateAlias's and GetAlias's arguments.
	Alias   string `json:"alias,omitempty"`
	Version string `json:"version,omitempty"`
}

// ControlOutput is the Output of an acknowledged control-plane operation.
type ControlOutput struct {
	// Description is the description of the configuration GetFunction or
	// PublishVersion returned.
	Description string `json:"description,omitempty"`
	// Version is the version PublishVersion returned, or the version an
	// alias points to (GetAlias).
	Version string `json:"version,omitempty"`
}

// InvokeInput is the Input of Invoke and InvokeAsync.
type InvokeInput struct {
	// Nonce is unique per invocation; the function echoes it back (sync)
	// or reports it as delivered (async).
	Nonce string `json:"nonce"`
	// Qualifier is the version or alias invoked ("" is $LATEST).
	Qualifier string `json:"qualifier,omitempty"`
}

// InvokeOutput is what the function reported from inside its sandbox.
type InvokeOutput struct {
	// Nonce is the nonce the function saw; a wrong one is a wrong result.
	Nonce string `json:"nonce"`
	// FunctionError is X-Amz-Function-Error when the function failed.
	FunctionError string `json:"function_error,omitempty"`
	// StartUnixNano and EndUnixNano bracket the handler's execution, read
	// from the wall clock inside the sandbox.
	StartUnixNano int64 `json:"start_unix_nano"`
	EndUnixNano   int64 `json:"end_unix_nano"`
	// Sandbox identifies the execution environment that ran it; Marker
	// the upload of the code it ran.
	Sandbox string `json:"sandbox,omitempty"`
	Marker  string `json:"marker,omitempty"`
	// Node is X-Stoke-Node: the node that ran it.
	Node string `json:"node,omitempty"`
}
