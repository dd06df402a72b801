package lambdaapi

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// JSON shapes of the Lambda API (2015-03-31 and later), with the member
// names of the service model. Only what Stoke supports is modelled; fields
// the SDKs send that Stoke does not use are ignored on input.

type functionCode struct {
	ZipFile         []byte  `json:"ZipFile"`
	S3Bucket        *string `json:"S3Bucket"`
	S3Key           *string `json:"S3Key"`
	S3ObjectVersion *string `json:"S3ObjectVersion"`
	ImageURI        *string `json:"ImageUri"`
}

type environment struct {
	Variables map[string]string `json:"Variables"`
}

type deadLetterConfig struct {
	TargetArn *string `json:"TargetArn,omitempty"`
}

type ephemeralStorage struct {
	Size int32 `json:"Size"`
}

type createFunctionRequest struct {
	FunctionName     *string           `json:"FunctionName"`
	Runtime          *string           `json:"Runtime"`
	Role             *string           `json:"Role"`
	Handler          *string           `json:"Handler"`
	Code             *functionCode     `json:"Code"`
	Description      *string           `json:"Description"`
	Timeout          *int32            `json:"Timeout"`
	MemorySize       *int32            `json:"MemorySize"`
	Publish          bool              `json:"Publish"`
	Environment      *environment      `json:"Environment"`
	Tags             map[string]string `json:"Tags"`
	Architectures    []string          `json:"Architectures"`
	EphemeralStorage *ephemeralStorage `json:"EphemeralStorage"`
	DeadLetterConfig *deadLetterConfig `json:"DeadLetterConfig"`
	PackageType      *string           `json:"PackageType"`
	Layers           []string          `json:"Layers"`
}

// updateFunctionCodeRequest carries the code members at its top level,
// where CreateFunction nests them under Code.
type updateFunctionCodeRequest struct {
	functionCode
	Publish       bool     `json:"Publish"`
	DryRun        bool     `json:"DryRun"`
	RevisionID    *string  `json:"RevisionId"`
	Architectures []string `json:"Architectures"`
}

type updateFunctionConfigurationRequest struct {
	Role             *string           `json:"Role"`
	Handler          *string           `json:"Handler"`
	Description      *string           `json:"Description"`
	Timeout          *int32            `json:"Timeout"`
	MemorySize       *int32            `json:"MemorySize"`
	Environment      *environment      `json:"Environment"`
	Runtime          *string           `json:"Runtime"`
	DeadLetterConfig *deadLetterConfig `json:"DeadLetterConfig"`
	RevisionID       *string           `json:"RevisionId"`
	EphemeralStorage *ephemeralStorage `json:"EphemeralStorage"`
	Layers           []string          `json:"Layers"`
}

type publishVersionRequest struct {
	CodeSha256  *string `json:"CodeSha256"`
	Description *string `json:"Description"`
	RevisionID  *string `json:"RevisionId"`
}

type aliasRoutingConfiguration struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
}

type createAliasRequest struct {
	Name            *string                    `json:"Name"`
	FunctionVersion *string                    `json:"FunctionVersion"`
	Description     *string                    `json:"Description"`
	RoutingConfig   *aliasRoutingConfiguration `json:"RoutingConfig"`
}

type updateAliasRequest struct {
	FunctionVersion *string                    `json:"FunctionVersion"`
	Description     *string                    `json:"Description"`
	RoutingConfig   *aliasRoutingConfiguration `json:"RoutingConfig"`
	RevisionID      *string                    `json:"RevisionId"`
}

type putConcurrencyRequest struct {
	ReservedConcurrentExecutions *int32 `json:"ReservedConcurrentExecutions"`
}

type tagResourceRequest struct {
	Tags map[string]string `json:"Tags"`
}

// ---------------------------------------------------------------- responses

type environmentResponse struct {
	Variables map[string]string `json:"Variables"`
}

type tracingConfigResponse struct {
	Mode string `json:"Mode"`
}

type snapStartResponse struct {
	ApplyOn            string `json:"ApplyOn"`
	OptimizationStatus string `json:"OptimizationStatus"`
}

type loggingConfig struct {
	LogFormat string `json:"LogFormat"`
	LogGroup  string `json:"LogGroup"`
}

type runtimeVersionConfig struct {
	RuntimeVersionArn string `json:"RuntimeVersionArn"`
}

type functionConfiguration struct {
	FunctionName         string                `json:"FunctionName"`
	FunctionArn          string                `json:"FunctionArn"`
	Runtime              string                `json:"Runtime"`
	Role                 string                `json:"Role"`
	Handler              string                `json:"Handler"`
	CodeSize             int64                 `json:"CodeSize"`
	Description          string                `json:"Description"`
	Timeout              int32                 `json:"Timeout"`
	MemorySize           int32                 `json:"MemorySize"`
	LastModified         string                `json:"LastModified"`
	CodeSha256           string                `json:"CodeSha256"`
	Version              string                `json:"Version"`
	Environment          *environmentResponse  `json:"Environment,omitempty"`
	DeadLetterConfig     *deadLetterConfig     `json:"DeadLetterConfig,omitempty"`
	TracingConfig        tracingConfigResponse `json:"TracingConfig"`
	RevisionID           string                `json:"RevisionId"`
	State                string                `json:"State"`
	StateReason          string                `json:"StateReason,omitempty"`
	StateReasonCode      string                `json:"StateReasonCode,omitempty"`
	LastUpdateStatus     string                `json:"LastUpdateStatus"`
	PackageType          string                `json:"PackageType"`
	Architectures        []string              `json:"Architectures"`
	EphemeralStorage     ephemeralStorage      `json:"EphemeralStorage"`
	SnapStart            snapStartResponse     `json:"SnapStart"`
	RuntimeVersionConfig runtimeVersionConfig  `json:"RuntimeVersionConfig"`
	LoggingConfig        loggingConfig         `json:"LoggingConfig"`
	Layers               []struct{}            `json:"Layers,omitempty"`
}

type functionCodeLocation struct {
	RepositoryType string `json:"RepositoryType"`
	Location       string `json:"Location"`
}

type concurrency struct {
	ReservedConcurrentExecutions *int32 `json:"ReservedConcurrentExecutions,omitempty"`
}

type getFunctionResponse struct {
	Configuration functionConfiguration `json:"Configuration"`
	Code          functionCodeLocation  `json:"Code"`
	Tags          map[string]string     `json:"Tags,omitempty"`
	Concurrency   *concurrency          `json:"Concurrency,omitempty"`
}

type listFunctionsResponse struct {
	Functions  []functionConfiguration `json:"Functions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

type listVersionsResponse struct {
	Versions   []functionConfiguration `json:"Versions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

type aliasConfiguration struct {
	AliasArn        string                     `json:"AliasArn"`
	Name            string                     `json:"Name"`
	FunctionVersion string                     `json:"FunctionVersion"`
	Description     string                     `json:"Description"`
	RoutingConfig   *aliasRoutingConfiguration `json:"RoutingConfig,omitempty"`
	RevisionID      string                     `json:"RevisionId"`
}

type listAliasesResponse struct {
	Aliases    []aliasConfiguration `json:"Aliases"`
	NextMarker *string              `json:"NextMarker,omitempty"`
}

type accountLimit struct {
	TotalCodeSize                  int64 `json:"TotalCodeSize"`
	CodeSizeUnzipped               int64 `json:"CodeSizeUnzipped"`
	CodeSizeZipped                 int64 `json:"CodeSizeZipped"`
	ConcurrentExecutions           int32 `json:"ConcurrentExecutions"`
	UnreservedConcurrentExecutions int32 `json:"UnreservedConcurrentExecutions"`
}

type accountUsage struct {
	TotalCodeSize int64 `json:"TotalCodeSize"`
	FunctionCount int64 `json:"FunctionCount"`
	// ConcurrentExecutions is a Stoke extension (SDKs ignore it): the
	// account's invocations in flight across the cluster, as the lease
	// coordinator last heard from every node.
	ConcurrentExecutions *int64 `json:"ConcurrentExecutions,omitempty"`
}

type accountSettings struct {
	AccountLimit accountLimit `json:"AccountLimit"`
	AccountUsage accountUsage `json:"AccountUsage"`
}

type listTagsResponse struct {
	Tags map[string]string `json:"Tags"`
}

// lastModified formats a time the way Lambda does: 2026-11-26T20:55:28.000+0000.
func lastModified(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format("2006-01-02T15:04:05.000-0700")
}

// configuration renders one configuration (of $LATEST or a version).
// env holds the opened environment variables (nil when there are none).
func (h *Handler) configuration(fn *fsmpb.Function, v *fsmpb.Version, env map[string]string) functionConfiguration {
	cfg, version, arn := fn.Config, VersionLatest, h.functionARN(fn.AccountId, fn.Name)
	revision, modified, description := fn.RevisionId, fn.LastModifiedUnixNano, fn.Config.GetDescription()
	if v != nil {
		cfg, version = v.Config, strconv.FormatInt(v.Version, 10)
		arn = h.qualifiedARN(fn.AccountId, fn.Name, version)
		// A version shows the description frozen with it, not $LATEST's.
		revision, modified, description = v.RevisionId, v.LastModifiedUnixNano, v.Config.GetDescription()
		if v.Description != "" {
			description = v.Description
		}
	}
	out := functionConfiguration{
		FunctionName:     fn.Name,
		FunctionArn:      arn,
		Runtime:          cfg.Runtime,
		Role:             cfg.Role,
		Handler:          cfg.Handler,
		CodeSize:         cfg.CodeSize,
		Description:      description,
		Timeout:          cfg.TimeoutS,
		MemorySize:       cfg.MemoryMb,
		LastModified:     lastModified(modified),
		CodeSha256:       cfg.CodeSha256,
		Version:          version,
		TracingConfig:    tracingConfigResponse{Mode: "PassThrough"},
		RevisionID:       revision,
		State:            orDefault(fn.State, "Active"),
		StateReason:      fn.StateReason,
		StateReasonCode:  fn.StateReasonCode,
		LastUpdateStatus: orDefault(fn.LastUpdateStatus, "Successful"),
		PackageType:      orDefault(cfg.PackageType, "Zip"),
		Architectures:    cfg.Architectures,
		EphemeralStorage: ephemeralStorage{Size: cfg.EphemeralMb},
		SnapStart:        snapStartResponse{ApplyOn: "None", OptimizationStatus: "Off"},
		RuntimeVersionConfig: runtimeVersionConfig{
			RuntimeVersionArn: "arn:aws:lambda:" + h.cfg.Region + "::runtime:stoke-" + cfg.Runtime,
		},
		LoggingConfig: loggingConfig{LogFormat: "Text", LogGroup: "/aws/lambda/" + fn.Name},
	}
	if len(out.Architectures) == 0 {
		out.Architectures = []string{"x86_64"}
	}
	if env != nil {
		out.Environment = &environmentResponse{Variables: env}
	}
	if cfg.DeadLetterTargetArn != "" {
		arn := cfg.DeadLetterTargetArn
		out.DeadLetterConfig = &deadLetterConfig{TargetArn: &arn}
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (h *Handler) alias(al *fsmpb.Alias) aliasConfiguration {
	out := aliasConfiguration{
		AliasArn:        h.qualifiedARN(al.AccountId, al.FunctionName, al.Name),
		Name:            al.Name,
		FunctionVersion: al.FunctionVersion,
		Description:     al.Description,
		RevisionID:      al.RevisionId,
	}
	if len(al.AdditionalVersionWeights) > 0 {
		out.RoutingConfig = &aliasRoutingConfiguration{AdditionalVersionWeights: al.AdditionalVersionWeights}
	}
	return out
}

// envJSON encodes variables deterministically (sorted keys) so their size,
// which Lambda limits to 4 KB, does not depend on map order.
func envJSON(vars map[string]string) []byte {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(vars[k])
		buf = append(append(append(buf, kb...), ':'), vb...)
	}
	return append(buf, '}')
}
