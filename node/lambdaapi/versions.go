package lambdaapi

import (
	"net/http"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func (h *Handler) publishVersion(req *request) (any, int, *Error) {
	var in publishVersionRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if err := checkDescription(deref(in.Description)); err != nil {
		return nil, 0, err
	}
	res, apiErr := h.apply(req, &fsmpb.PublishVersionCmd{
		Header: h.header(req), Name: ref.Name, ExpectedCodeSha256: deref(in.CodeSha256),
		ExpectedRevisionId: deref(in.RevisionID), Description: deref(in.Description),
	})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cfg, apiErr := h.renderConfig(resolved{fn: res.Function, version: res.Version})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return cfg, http.StatusCreated, nil
}

// listVersions pages through $LATEST and the published versions in order.
func (h *Handler) listVersions(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	limit, marker, apiErr := pageOf(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, fn, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	rows := []resolved{{fn: fn}}
	for _, ver := range v.Versions(ref.AccountID, ref.Name) {
		rows = append(rows, resolved{fn: fn, version: ver})
	}
	out := listVersionsResponse{Versions: []functionConfiguration{}}
	for _, rs := range rows {
		if marker != "" && versionOrder(rowKey(rs)) <= versionOrder(marker) {
			continue
		}
		if len(out.Versions) == limit {
			out.NextMarker = encodeMarker(out.Versions[limit-1].Version)
			break
		}
		cfg, apiErr := h.renderConfig(rs)
		if apiErr != nil {
			return nil, 0, apiErr
		}
		out.Versions = append(out.Versions, cfg)
	}
	return out, http.StatusOK, nil
}

func checkAliasName(name string) *Error {
	if !aliasNameRE.MatchString(name) || isVersionNumber(name) {
		return constraint(name, "name", "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
	}
	return nil
}

func checkVersionRef(v string) *Error {
	if v != VersionLatest && !isVersionNumber(v) {
		return constraint(v, "functionVersion", `Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)`)
	}
	return nil
}

func (h *Handler) createAlias(req *request) (any, int, *Error) {
	var in createAliasRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if in.Name == nil || in.FunctionVersion == nil {
		return nil, 0, invalidParameter("Name and FunctionVersion are required")
	}
	for _, c := range []*Error{checkAliasName(*in.Name), checkVersionRef(*in.FunctionVersion), checkDescription(deref(in.Description))} {
		if c != nil {
			return nil, 0, c
		}
	}
	al := &fsmpb.Alias{FunctionName: ref.Name, Name: *in.Name, FunctionVersion: *in.FunctionVersion, Description: deref(in.Description)}
	if in.RoutingConfig != nil {
		al.AdditionalVersionWeights = in.RoutingConfig.AdditionalVersionWeights
	}
	res, apiErr := h.apply(req, &fsmpb.CreateAliasCmd{Header: h.header(req), Alias: al})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return h.alias(res.Alias), http.StatusCreated, nil
}

func (h *Handler) getAlias(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	name := req.r.PathValue("alias")
	al := v.Alias(ref.AccountID, ref.Name, name)
	if al == nil {
		return nil, 0, notFound("Alias not found: %s", h.qualifiedARN(ref.AccountID, ref.Name, name))
	}
	return h.alias(al), http.StatusOK, nil
}

func (h *Handler) updateAlias(req *request) (any, int, *Error) {
	var in updateAliasRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cmd := &fsmpb.UpdateAliasCmd{Header: h.header(req), FunctionName: ref.Name, Name: req.r.PathValue("alias"),
		ExpectedRevisionId: deref(in.RevisionID)}
	if in.FunctionVersion != nil {
		if c := checkVersionRef(*in.FunctionVersion); c != nil {
			return nil, 0, c
		}
		cmd.FunctionVersion = *in.FunctionVersion
	}
	if in.Description != nil {
		if c := checkDescription(*in.Description); c != nil {
			return nil, 0, c
		}
		cmd.SetDescription, cmd.Description = true, *in.Description
	}
	if in.RoutingConfig != nil {
		cmd.SetWeights, cmd.AdditionalVersionWeights = true, in.RoutingConfig.AdditionalVersionWeights
	}
	res, apiErr := h.apply(req, cmd)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return h.alias(res.Alias), http.StatusOK, nil
}

func (h *Handler) deleteAlias(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if _, apiErr := h.apply(req, &fsmpb.DeleteAliasCmd{Header: h.header(req), FunctionName: ref.Name, Name: req.r.PathValue("alias")}); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}

func (h *Handler) listAliases(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	limit, marker, apiErr := pageOf(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	filter := req.r.URL.Query().Get("FunctionVersion")
	v, _, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := listAliasesResponse{Aliases: []aliasConfiguration{}}
	for _, al := range v.Aliases(ref.AccountID, ref.Name) {
		if al.Name <= marker || (filter != "" && al.FunctionVersion != filter) {
			continue
		}
		if len(out.Aliases) == limit {
			out.NextMarker = encodeMarker(out.Aliases[limit-1].Name)
			break
		}
		out.Aliases = append(out.Aliases, h.alias(al))
	}
	return out, http.StatusOK, nil
}

// concurrency and account settings

func (h *Handler) putFunctionConcurrency(req *request) (any, int, *Error) {
	var in putConcurrencyRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if in.ReservedConcurrentExecutions == nil {
		return nil, 0, invalidParameter("ReservedConcurrentExecutions is required")
	}
	if n := *in.ReservedConcurrentExecutions; n < 0 {
		return nil, 0, constraint(n, "reservedConcurrentExecutions", "Member must have value greater than or equal to 0")
	}
	res, apiErr := h.apply(req, &fsmpb.PutFunctionConcurrencyCmd{Header: h.header(req), Name: ref.Name, Reserved: *in.ReservedConcurrentExecutions})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	n := res.Function.ReservedConcurrency
	return concurrency{ReservedConcurrentExecutions: &n}, http.StatusOK, nil
}

func (h *Handler) deleteFunctionConcurrency(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if _, apiErr := h.apply(req, &fsmpb.DeleteFunctionConcurrencyCmd{Header: h.header(req), Name: ref.Name}); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}

func (h *Handler) getFunctionConcurrency(req *request) (any, int, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	_, fn, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if !fn.HasReservedConcurrency {
		return concurrency{}, http.StatusOK, nil
	}
	n := fn.ReservedConcurrency
	return concurrency{ReservedConcurrentExecutions: &n}, http.StatusOK, nil
}

func (h *Handler) getAccountSettings(req *request) (any, int, *Error) {
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	acct := v.Account(req.caller.AccountID)
	if acct == nil {
		return nil, 0, notFound("Account not found: %s", req.caller.AccountID)
	}
	// The same count the code store checks the limit against.
	usage := accountUsage{TotalCodeSize: v.CodeStorageUsed(acct.Id), FunctionCount: int64(len(v.Functions(acct.Id, "", 0)))}
	if h.deps.Usage != nil {
		if n, err := h.deps.Usage.AccountConcurrency(req.ctx, acct.Id); err == nil {
			used := int64(n)
			usage.ConcurrentExecutions = &used
		} else {
			h.log.Debug("cluster-wide concurrency unavailable", "err", err)
		}
	}
	reserved := v.ReservedConcurrency(acct.Id, "")
	return accountSettings{
		AccountLimit: accountLimit{
			TotalCodeSize:                  acct.CodeStorageLimit,
			CodeSizeUnzipped:               262144000,
			CodeSizeZipped:                 52428800,
			ConcurrentExecutions:           acct.ConcurrencyLimit,
			UnreservedConcurrentExecutions: acct.ConcurrencyLimit - int32(reserved),
		},
		AccountUsage: usage,
	}, http.StatusOK, nil
}

// tags

func (h *Handler) tagTarget(req *request) (functionRef, *Error) {
	ref, apiErr := h.resolveName(req, req.r.PathValue("arn"))
	if apiErr != nil {
		return ref, apiErr
	}
	if ref.Qualifier != "" {
		return ref, invalidParameter("Tags apply to functions, not to versions or aliases: %s", req.r.PathValue("arn"))
	}
	return ref, nil
}

func (h *Handler) listTags(req *request) (any, int, *Error) {
	ref, apiErr := h.tagTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	_, fn, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	tags := fn.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return listTagsResponse{Tags: tags}, http.StatusOK, nil
}

func (h *Handler) tagResource(req *request) (any, int, *Error) {
	var in tagResourceRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.tagTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if len(in.Tags) == 0 {
		return nil, 0, invalidParameter("Tags are required")
	}
	if c := checkTags(in.Tags); c != nil {
		return nil, 0, c
	}
	if _, apiErr := h.apply(req, &fsmpb.TagResourceCmd{Header: h.header(req), FunctionName: ref.Name, Tags: in.Tags}); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}

func (h *Handler) untagResource(req *request) (any, int, *Error) {
	ref, apiErr := h.tagTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	keys := req.r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return nil, 0, invalidParameter("tagKeys is required")
	}
	if _, apiErr := h.apply(req, &fsmpb.UntagResourceCmd{Header: h.header(req), FunctionName: ref.Name, Keys: keys}); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}
