package lambdaapi

import (
	"net/http"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Provisioned concurrency (PutProvisionedConcurrencyConfig and friends,
// /2019-09-30/functions/{name}/provisioned-concurrency). The configs live
// in Raft; the nodes allocate the sandboxes and the leader records their
// progress in Status, Allocated and StatusReason.

type putProvisionedRequest struct {
	ProvisionedConcurrentExecutions *int32 `json:"ProvisionedConcurrentExecutions"`
}

// provisionedConfig is Lambda's Get/Put response; list items add the ARN.
type provisionedConfig struct {
	FunctionArn                              string `json:"FunctionArn,omitempty"`
	RequestedProvisionedConcurrentExecutions int32  `json:"RequestedProvisionedConcurrentExecutions"`
	AvailableProvisionedConcurrentExecutions int32  `json:"AvailableProvisionedConcurrentExecutions"`
	AllocatedProvisionedConcurrentExecutions int32  `json:"AllocatedProvisionedConcurrentExecutions"`
	Status                                   string `json:"Status"`
	StatusReason                             string `json:"StatusReason,omitempty"`
	LastModified                             string `json:"LastModified"`
}

type listProvisionedResponse struct {
	ProvisionedConcurrencyConfigs []provisionedConfig `json:"ProvisionedConcurrencyConfigs"`
	NextMarker                    *string             `json:"NextMarker,omitempty"`
}

func (h *Handler) provisionedShape(c *fsmpb.ProvisionedConcurrencyConfig, withARN bool) provisionedConfig {
	out := provisionedConfig{
		RequestedProvisionedConcurrentExecutions: c.Requested,
		// Every allocated sandbox takes invocations, so all are available.
		AvailableProvisionedConcurrentExecutions: c.Allocated,
		AllocatedProvisionedConcurrentExecutions: c.Allocated,
		Status:                                   c.Status,
		StatusReason:                             c.StatusReason,
		LastModified:                             lastModified(c.LastModifiedUnixNano),
	}
	if withARN {
		out.FunctionArn = h.qualifiedARN(c.AccountId, c.FunctionName, c.Qualifier)
	}
	return out
}

func provisionedNotFound() *Error {
	return newError(http.StatusNotFound, "ProvisionedConcurrencyConfigNotFoundException", "No Provisioned Concurrency Config found for this function")
}

// provisionedTarget parses the function and its required qualifier.
func (h *Handler) provisionedTarget(req *request) (functionRef, string, *Error) {
	ref, q, apiErr := h.qualifiedTarget(req)
	if apiErr != nil {
		return ref, "", apiErr
	}
	switch q {
	case "":
		return ref, "", invalidParameter("A Qualifier (version number or alias name) is required for provisioned concurrency")
	case VersionLatest:
		return ref, "", invalidParameter("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
	}
	return ref, q, nil
}

func (h *Handler) putProvisionedConcurrency(req *request) (any, int, *Error) {
	var in putProvisionedRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, q, apiErr := h.provisionedTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if in.ProvisionedConcurrentExecutions == nil {
		return nil, 0, invalidParameter("ProvisionedConcurrentExecutions is required")
	}
	if n := *in.ProvisionedConcurrentExecutions; n < 1 {
		return nil, 0, constraint(n, "provisionedConcurrentExecutions", "Member must have value greater than or equal to 1")
	}
	if _, apiErr := h.apply(req, &fsmpb.PutProvisionedConcurrencyCmd{Header: h.header(req), FunctionName: ref.Name,
		Qualifier: q, Requested: *in.ProvisionedConcurrentExecutions}); apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	c := v.ProvisionedConfig(ref.AccountID, ref.Name, q)
	if c == nil { // deleted again in between
		return nil, 0, provisionedNotFound()
	}
	return h.provisionedShape(c, false), http.StatusAccepted, nil
}

// getProvisionedConcurrency serves Get, and List when ?List=ALL is given
// (both are GET on the same path in Lambda's API).
func (h *Handler) getProvisionedConcurrency(req *request) (any, int, *Error) {
	if req.r.URL.Query().Get("List") == "ALL" {
		return h.listProvisionedConcurrency(req)
	}
	ref, q, apiErr := h.provisionedTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	c := v.ProvisionedConfig(ref.AccountID, ref.Name, q)
	if c == nil {
		return nil, 0, provisionedNotFound()
	}
	return h.provisionedShape(c, false), http.StatusOK, nil
}

func (h *Handler) listProvisionedConcurrency(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	limit, marker, apiErr := pageOf(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := listProvisionedResponse{ProvisionedConcurrencyConfigs: []provisionedConfig{}}
	last := ""
	// Configs come in qualifier order, the order markers compare in.
	for _, c := range v.ProvisionedConfigs(ref.AccountID, ref.Name) {
		if c.Qualifier <= marker {
			continue
		}
		if len(out.ProvisionedConcurrencyConfigs) == limit {
			out.NextMarker = encodeMarker(last)
			break
		}
		out.ProvisionedConcurrencyConfigs = append(out.ProvisionedConcurrencyConfigs, h.provisionedShape(c, true))
		last = c.Qualifier
	}
	return out, http.StatusOK, nil
}

func (h *Handler) deleteProvisionedConcurrency(req *request) (any, int, *Error) {
	ref, q, apiErr := h.provisionedTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if v.Function(ref.AccountID, ref.Name) != nil && v.ProvisionedConfig(ref.AccountID, ref.Name, q) == nil {
		return nil, 0, provisionedNotFound()
	}
	if _, apiErr := h.apply(req, &fsmpb.DeleteProvisionedConcurrencyCmd{Header: h.header(req), FunctionName: ref.Name, Qualifier: q}); apiErr != nil {
		if apiErr.Status == http.StatusNotFound && v.Function(ref.AccountID, ref.Name) != nil {
			return nil, 0, provisionedNotFound() // deleted concurrently
		}
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}
