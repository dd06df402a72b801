package lambdaapi

import (
	"net/http"
	"strings"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// Asynchronous invocation settings: Put/Update/Get/Delete/List
// FunctionEventInvokeConfig(s) with Lambda's shapes, and the targets
// (destinations, DeadLetterConfig.TargetArn) they and function
// configurations name.

// TargetKind says what a destination or dead-letter target is.
type TargetKind uint8

const (
	// TargetFunction is another Stoke function of the same account,
	// invoked asynchronously with Lambda's invocation record.
	TargetFunction TargetKind = iota + 1
	// TargetDeadLetterQueue is the function's built-in dead-letter queue
	// (`stoke dlq`, /stoke/v1/functions/{name}/dead-letters).
	TargetDeadLetterQueue
)

// Target is a parsed destination or dead-letter target.
type Target struct {
	Kind         TargetKind
	ARN          string // canonical form
	AccountID    string
	FunctionName string // TargetFunction only
	Qualifier    string // TargetFunction only; "" when unqualified
}

// DeadLetterQueueShorthand may be given instead of the built-in
// dead-letter queue's ARN; it is stored in the canonical ARN form.
const DeadLetterQueueShorthand = "stoke:dlq"

// DeadLetterQueueARN is the ARN naming the built-in dead-letter queue of
// the function it is configured on: arn:aws:stoke:REGION:ACCOUNT:dlq. It
// fits the ARN pattern the AWS CLI and SDKs expect of a DeadLetterConfig
// TargetArn and of a destination.
func DeadLetterQueueARN(region, accountID string) string {
	return "arn:aws:stoke:" + region + ":" + accountID + ":dlq"
}

// FunctionARN is the unqualified ARN of a function.
func FunctionARN(region, accountID, name string) string {
	return "arn:aws:lambda:" + region + ":" + accountID + ":function:" + name
}

// ParseTarget parses a target named by a function of accountID: a Stoke
// function ARN of this region and account (qualified or not), the
// built-in dead-letter queue's ARN, or DeadLetterQueueShorthand. AWS
// services Stoke does not have (SQS, SNS, EventBridge, S3) are refused.
func ParseTarget(region, accountID, raw string) (Target, *Error) {
	if raw == DeadLetterQueueShorthand || raw == DeadLetterQueueARN(region, accountID) {
		return Target{Kind: TargetDeadLetterQueue, ARN: DeadLetterQueueARN(region, accountID), AccountID: accountID}, nil
	}
	parts := strings.Split(raw, ":")
	if len(parts) < 6 || parts[0] != "arn" || !partitionRE.MatchString(parts[1]) {
		return Target{}, invalidParameter("The target %q is not an ARN. Stoke takes a Lambda function ARN or its built-in dead-letter queue (%s or %s)",
			truncate(raw, 200), DeadLetterQueueARN(region, accountID), DeadLetterQueueShorthand)
	}
	if parts[2] != "lambda" {
		return Target{}, invalidParameter("Stoke cannot deliver to %s targets (%s): use a Lambda function ARN or the built-in dead-letter queue %s",
			parts[2], truncate(raw, 200), DeadLetterQueueARN(region, accountID))
	}
	if parts[3] != region || parts[4] != accountID || parts[5] != "function" || len(parts) < 7 || len(parts) > 8 ||
		!functionNameRE.MatchString(parts[6]) || (len(parts) == 8 && !qualifierRE.MatchString(parts[7])) {
		return Target{}, invalidParameter("The target %q must be a function ARN of this region (%s) and account (%s)",
			truncate(raw, 200), region, accountID)
	}
	t := Target{Kind: TargetFunction, ARN: raw, AccountID: accountID, FunctionName: parts[6]}
	if len(parts) == 8 {
		t.Qualifier = parts[7]
	}
	return t, nil
}

// checkDeadLetterTarget validates DeadLetterConfig.TargetArn and returns
// its canonical form ("" stays "": no target).
func (h *Handler) checkDeadLetterTarget(accountID, raw string) (string, *Error) {
	if raw == "" {
		return "", nil
	}
	t, apiErr := ParseTarget(h.cfg.Region, accountID, raw)
	if apiErr != nil {
		return "", apiErr
	}
	return t.ARN, nil
}

type destination struct {
	Destination *string `json:"Destination,omitempty"`
}

type destinationConfig struct {
	OnSuccess *destination `json:"OnSuccess,omitempty"`
	OnFailure *destination `json:"OnFailure,omitempty"`
}

type eventInvokeConfigRequest struct {
	MaximumRetryAttempts     *int32             `json:"MaximumRetryAttempts"`
	MaximumEventAgeInSeconds *int32             `json:"MaximumEventAgeInSeconds"`
	DestinationConfig        *destinationConfig `json:"DestinationConfig"`
}

type functionEventInvokeConfig struct {
	// LastModified is a rest-json timestamp: epoch seconds.
	LastModified             float64           `json:"LastModified"`
	FunctionArn              string            `json:"FunctionArn"`
	MaximumRetryAttempts     *int32            `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int32            `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        destinationConfig `json:"DestinationConfig"`
}

type listEventInvokeConfigsResponse struct {
	FunctionEventInvokeConfigs []functionEventInvokeConfig `json:"FunctionEventInvokeConfigs"`
	NextMarker                 *string                     `json:"NextMarker,omitempty"`
}

func (h *Handler) eventInvokeConfig(c *fsmpb.EventInvokeConfig) functionEventInvokeConfig {
	out := functionEventInvokeConfig{
		LastModified: float64(c.LastModifiedUnixNano/1e6) / 1e3,
		FunctionArn:  h.qualifiedARN(c.AccountId, c.FunctionName, c.Qualifier),
		DestinationConfig: destinationConfig{
			OnSuccess: &destination{}, OnFailure: &destination{},
		},
	}
	if c.HasMaximumRetryAttempts {
		n := c.MaximumRetryAttempts
		out.MaximumRetryAttempts = &n
	}
	if c.HasMaximumEventAgeS {
		n := c.MaximumEventAgeS
		out.MaximumEventAgeInSeconds = &n
	}
	if s := c.GetDestinations().GetOnSuccess(); s != "" {
		out.DestinationConfig.OnSuccess.Destination = &s
	}
	if s := c.GetDestinations().GetOnFailure(); s != "" {
		out.DestinationConfig.OnFailure.Destination = &s
	}
	return out
}

// eventConfigTarget resolves {name} and the qualifier of an event-invoke
// config request; the qualifier defaults to $LATEST.
func (h *Handler) eventConfigTarget(req *request) (functionRef, string, *Error) {
	ref, q, apiErr := h.qualifiedTarget(req)
	if apiErr != nil {
		return ref, "", apiErr
	}
	if q == "" {
		q = VersionLatest
	}
	return ref, q, nil
}

// decodeEventInvokeConfig parses and checks a Put/Update body into the
// state machine's shape and the names of the fields it sets.
func (h *Handler) decodeEventInvokeConfig(req *request, ref functionRef, qualifier string) (*fsmpb.EventInvokeConfig, []string, *Error) {
	var in eventInvokeConfigRequest
	if apiErr := decode(req.body, &in); apiErr != nil {
		return nil, nil, apiErr
	}
	cfg := &fsmpb.EventInvokeConfig{FunctionName: ref.Name, Qualifier: qualifier, Destinations: &fsmpb.DestinationConfig{}}
	var fields []string
	if n := in.MaximumRetryAttempts; n != nil {
		if *n < 0 || *n > fsm.MaxRetryAttempts {
			return nil, nil, constraint(*n, "maximumRetryAttempts", "Member must have value between 0 and 2")
		}
		cfg.HasMaximumRetryAttempts, cfg.MaximumRetryAttempts = true, *n
		fields = append(fields, "maximum_retry_attempts")
	}
	if n := in.MaximumEventAgeInSeconds; n != nil {
		if *n < fsm.MinEventAgeSeconds || *n > fsm.MaxEventAgeSeconds {
			return nil, nil, constraint(*n, "maximumEventAgeInSeconds", "Member must have value between 60 and 21600")
		}
		cfg.HasMaximumEventAgeS, cfg.MaximumEventAgeS = true, *n
		fields = append(fields, "maximum_event_age_s")
	}
	if dc := in.DestinationConfig; dc != nil {
		for _, d := range []struct {
			in      *destination
			field   string
			success bool
			set     func(string)
		}{
			{dc.OnSuccess, "on_success", true, func(s string) { cfg.Destinations.OnSuccess = s }},
			{dc.OnFailure, "on_failure", false, func(s string) { cfg.Destinations.OnFailure = s }},
		} {
			if d.in == nil {
				continue
			}
			fields = append(fields, d.field)
			arn := deref(d.in.Destination)
			if arn == "" {
				continue
			}
			t, apiErr := ParseTarget(h.cfg.Region, ref.AccountID, arn)
			if apiErr != nil {
				return nil, nil, apiErr
			}
			if d.success && t.Kind == TargetDeadLetterQueue {
				return nil, nil, invalidParameter("The built-in dead-letter queue only takes failed events; it cannot be an OnSuccess destination")
			}
			d.set(t.ARN)
		}
	}
	return cfg, fields, nil
}

// putEventInvokeConfig serves Put (PUT: replace) and Update (POST: merge).
func (h *Handler) putEventInvokeConfig(req *request) (any, int, *Error) {
	ref, qualifier, apiErr := h.eventConfigTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cfg, fields, apiErr := h.decodeEventInvokeConfig(req, ref, qualifier)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cmd := &fsmpb.PutEventInvokeConfigCmd{Header: h.header(req), Config: cfg}
	if req.r.Method == http.MethodPost {
		cmd.Update, cmd.Fields = true, fields
	}
	if _, apiErr := h.apply(req, cmd); apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	stored := v.EventInvokeConfig(ref.AccountID, ref.Name, qualifier)
	if stored == nil {
		return nil, 0, conflict("The configuration of %s was deleted concurrently", h.qualifiedARN(ref.AccountID, ref.Name, qualifier))
	}
	return h.eventInvokeConfig(stored), http.StatusOK, nil
}

func (h *Handler) getEventInvokeConfig(req *request) (any, int, *Error) {
	ref, qualifier, apiErr := h.eventConfigTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	c := v.EventInvokeConfig(ref.AccountID, ref.Name, qualifier)
	if c == nil {
		return nil, 0, notFound("The function %s doesn't have an EventInvokeConfig", h.qualifiedARN(ref.AccountID, ref.Name, qualifier))
	}
	return h.eventInvokeConfig(c), http.StatusOK, nil
}

func (h *Handler) deleteEventInvokeConfig(req *request) (any, int, *Error) {
	ref, qualifier, apiErr := h.eventConfigTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if _, apiErr := h.apply(req, &fsmpb.DeleteEventInvokeConfigCmd{Header: h.header(req), FunctionName: ref.Name, Qualifier: qualifier}); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}

// maxEventInvokeConfigPage is Lambda's MaxItems bound for the list.
const maxEventInvokeConfigPage = 50

func (h *Handler) listEventInvokeConfigs(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	limit, apiErr := pageSize(req, maxEventInvokeConfigPage)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	marker := req.r.URL.Query().Get("Marker")
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := listEventInvokeConfigsResponse{FunctionEventInvokeConfigs: []functionEventInvokeConfig{}}
	last := ""
	for _, c := range v.EventInvokeConfigs(ref.AccountID, ref.Name) {
		if c.Qualifier <= marker {
			continue
		}
		if len(out.FunctionEventInvokeConfigs) == limit {
			out.NextMarker = &last
			break
		}
		out.FunctionEventInvokeConfigs = append(out.FunctionEventInvokeConfigs, h.eventInvokeConfig(c))
		last = c.Qualifier
	}
	return out, http.StatusOK, nil
}
