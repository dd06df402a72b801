package lambdaapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// EnvContext is the sealing context of a function's environment variables:
// sealed values open only for the function they were sealed for.
func EnvContext(accountID, function string) string {
	return "env:" + accountID + ":" + function
}

func (h *Handler) createFunction(req *request) (any, int, *Error) {
	var in createFunctionRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	if in.FunctionName == nil {
		return nil, 0, invalidParameter("FunctionName is required")
	}
	ref, apiErr := h.resolveName(req, *in.FunctionName)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if ref.Qualifier != "" {
		return nil, 0, invalidParameter("A qualifier is not allowed in the function name when creating a function: %s", *in.FunctionName)
	}
	if in.PackageType != nil && *in.PackageType != "Zip" {
		return nil, 0, invalidParameter("PackageType %s is not supported by Stoke; use Zip", *in.PackageType)
	}
	if in.Code == nil {
		return nil, 0, invalidParameter("Code is required")
	}
	if err := in.Code.checkSupported(); err != nil {
		return nil, 0, err
	}
	if len(in.Code.ZipFile) == 0 {
		return nil, 0, invalidParameter("Code.ZipFile is required: Stoke takes the .zip package inline")
	}
	if in.Runtime == nil || in.Handler == nil {
		return nil, 0, invalidParameter("Runtime and Handler are required for .zip file archive functions")
	}
	if in.Role == nil {
		return nil, 0, invalidParameter("Role is required")
	}
	if len(in.Layers) > 0 {
		return nil, 0, invalidParameter("Layers are not supported by Stoke yet")
	}
	cfg := &fsmpb.FunctionConfig{
		Runtime:       *in.Runtime,
		Handler:       *in.Handler,
		Role:          *in.Role,
		Description:   deref(in.Description),
		MemoryMb:      derefOr(in.MemorySize, DefaultMemoryMB),
		TimeoutS:      derefOr(in.Timeout, DefaultTimeoutS),
		EphemeralMb:   DefaultEphemeralMB,
		PackageType:   "Zip",
		Architectures: in.Architectures,
	}
	if in.EphemeralStorage != nil {
		cfg.EphemeralMb = in.EphemeralStorage.Size
	}
	if len(cfg.Architectures) == 0 {
		cfg.Architectures = []string{defaultArchitecture}
	}
	if in.DeadLetterConfig != nil {
		var apiErr *Error
		if cfg.DeadLetterTargetArn, apiErr = h.checkDeadLetterTarget(ref.AccountID, deref(in.DeadLetterConfig.TargetArn)); apiErr != nil {
			return nil, 0, apiErr
		}
	}
	for _, check := range []*Error{
		h.checkRuntime(cfg.Runtime), checkHandler(cfg.Handler), checkRole(cfg.Role),
		checkMemory(cfg.MemoryMb), checkTimeout(cfg.TimeoutS), checkEphemeral(cfg.EphemeralMb),
		checkDescription(cfg.Description), checkArchitectures(cfg.Architectures), checkTags(in.Tags),
	} {
		if check != nil {
			return nil, 0, check
		}
	}
	if in.Environment != nil && len(in.Environment.Variables) > 0 {
		if err := h.sealEnvironment(cfg, ref.AccountID, ref.Name, in.Environment.Variables); err != nil {
			return nil, 0, err
		}
	}
	// Refuse a duplicate before storing its code; the state machine checks
	// again at commit, which is what decides a race. The read is
	// consistent: a lagging replica would still hold a function deleted
	// through another node and refuse its re-creation.
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if v.Function(ref.AccountID, ref.Name) != nil {
		return nil, 0, conflict("Function already exist: %s", ref.Name)
	}
	code, apiErr := h.putCode(req, ref.Name, in.Code.ZipFile)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cfg.CodeSha256, cfg.CodeSize, cfg.BlobId = code.CodeSha256, code.Size, code.BlobID
	res, apiErr := h.apply(req, &fsmpb.CreateFunctionCmd{
		Header: h.header(req), Name: ref.Name, Config: cfg, Tags: in.Tags, Publish: in.Publish,
	})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return h.configuration(res.Function, res.Version, in.envOrNil()), http.StatusCreated, nil
}

func (in *createFunctionRequest) envOrNil() map[string]string {
	if in.Environment == nil || len(in.Environment.Variables) == 0 {
		return nil
	}
	return in.Environment.Variables
}

func (h *Handler) sealEnvironment(cfg *fsmpb.FunctionConfig, account, name string, vars map[string]string) *Error {
	js, apiErr := checkEnvironment(vars)
	if apiErr != nil {
		return apiErr
	}
	sealed, err := h.deps.Sealer.Seal(js, EnvContext(account, name))
	if err != nil {
		return serviceError("sealing environment variables: %v", err)
	}
	cfg.EnvironmentSealed, cfg.EnvironmentSize = sealed, int32(len(js))
	return nil
}

// openEnvironment returns a configuration's variables in the clear, or nil.
func (h *Handler) openEnvironment(account, name string, cfg *fsmpb.FunctionConfig) (map[string]string, *Error) {
	if len(cfg.GetEnvironmentSealed()) == 0 {
		return nil, nil
	}
	js, err := h.deps.Sealer.Open(cfg.EnvironmentSealed, EnvContext(account, name))
	if err != nil {
		return nil, serviceError("cannot open the environment variables of %s: %v", name, err)
	}
	var vars map[string]string
	if err := json.Unmarshal(js, &vars); err != nil {
		return nil, serviceError("corrupt environment variables of %s", name)
	}
	return vars, nil
}

func (h *Handler) putCode(req *request, function string, zip []byte) (CodeInfo, *Error) {
	info, err := h.deps.Code.Put(req.ctx, req.caller.AccountID, function, zip)
	switch {
	case err == nil:
		return info, nil
	case errors.Is(err, ErrInvalidCode):
		return info, invalidParameter("%v", err)
	case errors.Is(err, ErrCodeStorageExceeded):
		return info, codeStorageExceeded("Code storage limit exceeded: %v", err)
	}
	return info, h.toAPIError(err)
}

// resolved is a function configuration picked by a qualifier.
type resolved struct {
	fn      *fsmpb.Function
	version *fsmpb.Version // nil for $LATEST
	alias   *fsmpb.Alias   // set when the qualifier was an alias
}

func (r resolved) config() *fsmpb.FunctionConfig {
	if r.version != nil {
		return r.version.Config
	}
	return r.fn.Config
}

// resolve finds the function and the configuration a qualifier selects.
// For an alias it selects the alias's primary version.
func (h *Handler) resolve(v *fsm.View, ref functionRef, qualifier string) (resolved, *Error) {
	fn := v.Function(ref.AccountID, ref.Name)
	if fn == nil {
		return resolved{}, functionNotFound(h, ref.AccountID, ref.Name, "")
	}
	switch {
	case qualifier == "" || qualifier == VersionLatest:
		return resolved{fn: fn}, nil
	case isVersionNumber(qualifier):
		ver := versionOf(v, ref, qualifier)
		if ver == nil {
			return resolved{}, functionNotFound(h, ref.AccountID, ref.Name, qualifier)
		}
		return resolved{fn: fn, version: ver}, nil
	}
	al := v.Alias(ref.AccountID, ref.Name, qualifier)
	if al == nil {
		return resolved{}, functionNotFound(h, ref.AccountID, ref.Name, qualifier)
	}
	out := resolved{fn: fn, alias: al}
	if al.FunctionVersion != VersionLatest {
		out.version = versionOf(v, ref, al.FunctionVersion)
		if out.version == nil {
			return resolved{}, functionNotFound(h, ref.AccountID, ref.Name, al.FunctionVersion)
		}
	}
	return out, nil
}

// versionOf returns the published version q names in v, or nil.
func versionOf(v *fsm.View, ref functionRef, q string) *fsmpb.Version {
	n, ok := parseVersion(q)
	if !ok {
		return nil
	}
	return v.Version(ref.AccountID, ref.Name, n)
}

func (h *Handler) lookup(req *request) (resolved, *Error) {
	ref, q, apiErr := h.qualifiedTarget(req)
	if apiErr != nil {
		return resolved{}, apiErr
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return resolved{}, apiErr
	}
	return h.resolve(v, ref, q)
}

func (h *Handler) renderConfig(rs resolved) (functionConfiguration, *Error) {
	env, apiErr := h.openEnvironment(rs.fn.AccountId, rs.fn.Name, rs.config())
	if apiErr != nil {
		return functionConfiguration{}, apiErr
	}
	return h.configuration(rs.fn, rs.version, env), nil
}

func (h *Handler) getFunctionConfiguration(req *request) (any, int, *Error) {
	rs, apiErr := h.lookup(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cfg, apiErr := h.renderConfig(rs)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return cfg, http.StatusOK, nil
}

func (h *Handler) getFunction(req *request) (any, int, *Error) {
	rs, apiErr := h.lookup(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cfg, apiErr := h.renderConfig(rs)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := getFunctionResponse{
		Configuration: cfg,
		Code:          functionCodeLocation{RepositoryType: "S3", Location: h.codeURL(req, rs.fn.AccountId, rs.config().BlobId)},
		Tags:          rs.fn.Tags,
	}
	if rs.fn.HasReservedConcurrency {
		n := rs.fn.ReservedConcurrency
		out.Concurrency = &concurrency{ReservedConcurrentExecutions: &n}
	}
	return out, http.StatusOK, nil
}

// codeURL returns a short-lived URL on this node that serves the original
// zip without further credentials, like the presigned S3 URL Lambda gives.
func (h *Handler) codeURL(req *request, account, blobID string) string {
	expires := strconv.FormatInt(time.Now().Add(h.cfg.CodeURLTTL).Unix(), 10)
	q := url.Values{"account": {account}, "expires": {expires}, "signature": {h.codeSignature(blobID, account, expires)}}
	scheme := "http"
	if req.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.r.Host + "/stoke/v1/code/" + url.PathEscape(blobID) + "?" + q.Encode()
}

func (h *Handler) codeSignature(blobID, account, expires string) string {
	m := hmac.New(sha256.New, h.cfg.CodeURLKey)
	io.WriteString(m, blobID+"\n"+account+"\n"+expires)
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) downloadCode(req *request) (any, int, *Error) {
	blobID := req.r.PathValue("blob")
	q := req.r.URL.Query()
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	want := h.codeSignature(blobID, q.Get("account"), q.Get("expires"))
	if err != nil || !hmac.Equal([]byte(want), []byte(q.Get("signature"))) {
		return nil, 0, accessDenied("The code download URL is not valid")
	}
	if time.Now().Unix() > expires {
		return nil, 0, accessDenied("The code download URL expired; call GetFunction again for a fresh one")
	}
	rc, size, err := h.deps.Code.OpenZip(req.ctx, blobID)
	if err != nil {
		return nil, 0, h.toAPIError(err)
	}
	return rawResponse(func(w http.ResponseWriter) {
		defer rc.Close()
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = io.Copy(w, rc)
	}), http.StatusOK, nil
}

func (h *Handler) deleteFunction(req *request) (any, int, *Error) {
	ref, q, apiErr := h.qualifiedTarget(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	cmd := &fsmpb.DeleteFunctionCmd{Header: h.header(req), Name: ref.Name}
	switch {
	case q == "":
	case q == VersionLatest:
		return nil, 0, invalidParameter("$LATEST version cannot be deleted without deleting the function.")
	case isVersionNumber(q):
		n, ok := parseVersion(q)
		if !ok {
			return nil, 0, functionNotFound(h, ref.AccountID, ref.Name, q)
		}
		cmd.Version = n
	default:
		return nil, 0, invalidParameter("Deletion of aliases is not supported through DeleteFunction; use DeleteAlias for %s", q)
	}
	if _, apiErr := h.apply(req, cmd); apiErr != nil {
		return nil, 0, apiErr
	}
	return nil, http.StatusNoContent, nil
}

func (h *Handler) updateFunctionCode(req *request) (any, int, *Error) {
	var in updateFunctionCodeRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if err := in.checkSupported(); err != nil {
		return nil, 0, err
	}
	if len(in.ZipFile) == 0 {
		return nil, 0, invalidParameter("ZipFile is required: Stoke takes the .zip package inline")
	}
	if err := checkArchitectures(in.Architectures); err != nil {
		return nil, 0, err
	}
	// A consistent read, like every control-plane read: on a lagging
	// replica a function created or updated through another node would
	// be missing (404) or fail its RevisionId check (412).
	_, fn, apiErr := h.functionView(req, ref)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if in.RevisionID != nil && *in.RevisionID != fn.RevisionId {
		return nil, 0, preconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	code, apiErr := h.putCode(req, ref.Name, in.ZipFile)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if in.DryRun {
		preview := proto.Clone(fn).(*fsmpb.Function)
		preview.Config.CodeSha256, preview.Config.CodeSize = code.CodeSha256, code.Size
		env, apiErr := h.openEnvironment(fn.AccountId, fn.Name, fn.Config)
		if apiErr != nil {
			return nil, 0, apiErr
		}
		return h.configuration(preview, nil, env), http.StatusOK, nil
	}
	res, apiErr := h.apply(req, &fsmpb.UpdateFunctionCodeCmd{
		Header: h.header(req), Name: ref.Name, CodeSha256: code.CodeSha256, CodeSize: code.Size,
		BlobId: code.BlobID, ExpectedRevisionId: deref(in.RevisionID), Publish: in.Publish, Architectures: in.Architectures,
	})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	env, apiErr := h.openEnvironment(res.Function.AccountId, res.Function.Name, res.Function.Config)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return h.configuration(res.Function, res.Version, env), http.StatusOK, nil
}

func (h *Handler) updateFunctionConfiguration(req *request) (any, int, *Error) {
	var in updateFunctionConfigurationRequest
	if err := decode(req.body, &in); err != nil {
		return nil, 0, err
	}
	ref, apiErr := h.resolveName(req, req.r.PathValue("name"))
	if apiErr != nil {
		return nil, 0, apiErr
	}
	if len(in.Layers) > 0 {
		return nil, 0, invalidParameter("Layers are not supported by Stoke yet")
	}
	cfg := &fsmpb.FunctionConfig{}
	var fields []string
	set := func(field string, check *Error) *Error {
		fields = append(fields, field)
		return check
	}
	var checks []*Error
	if in.Runtime != nil {
		cfg.Runtime = *in.Runtime
		checks = append(checks, set("runtime", h.checkRuntime(cfg.Runtime)))
	}
	if in.Handler != nil {
		cfg.Handler = *in.Handler
		checks = append(checks, set("handler", checkHandler(cfg.Handler)))
	}
	if in.Role != nil {
		cfg.Role = *in.Role
		checks = append(checks, set("role", checkRole(cfg.Role)))
	}
	if in.Description != nil {
		cfg.Description = *in.Description
		checks = append(checks, set("description", checkDescription(cfg.Description)))
	}
	if in.MemorySize != nil {
		cfg.MemoryMb = *in.MemorySize
		checks = append(checks, set("memory_mb", checkMemory(cfg.MemoryMb)))
	}
	if in.Timeout != nil {
		cfg.TimeoutS = *in.Timeout
		checks = append(checks, set("timeout_s", checkTimeout(cfg.TimeoutS)))
	}
	if in.EphemeralStorage != nil {
		cfg.EphemeralMb = in.EphemeralStorage.Size
		checks = append(checks, set("ephemeral_mb", checkEphemeral(cfg.EphemeralMb)))
	}
	if in.DeadLetterConfig != nil {
		var check *Error
		cfg.DeadLetterTargetArn, check = h.checkDeadLetterTarget(ref.AccountID, deref(in.DeadLetterConfig.TargetArn))
		checks = append(checks, set("dead_letter_target_arn", check))
	}
	if in.Environment != nil {
		fields = append(fields, "environment")
		if len(in.Environment.Variables) > 0 {
			checks = append(checks, h.sealEnvironment(cfg, ref.AccountID, ref.Name, in.Environment.Variables))
		}
	}
	for _, c := range checks {
		if c != nil {
			return nil, 0, c
		}
	}
	res, apiErr := h.apply(req, &fsmpb.UpdateFunctionConfigCmd{
		Header: h.header(req), Name: ref.Name, Config: cfg, Fields: fields, ExpectedRevisionId: deref(in.RevisionID),
	})
	if apiErr != nil {
		return nil, 0, apiErr
	}
	env, apiErr := h.openEnvironment(res.Function.AccountId, res.Function.Name, res.Function.Config)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	return h.configuration(res.Function, nil, env), http.StatusOK, nil
}

// pageSize reads MaxItems (1..most, default 50 or most if smaller).
func pageSize(req *request, most int) (int, *Error) {
	raw := req.r.URL.Query().Get("MaxItems")
	if raw == "" {
		return min(defaultListPageSize, most), nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > most {
		return 0, constraint(raw, "maxItems", fmt.Sprintf("Member must have value between 1 and %d", most))
	}
	return n, nil
}

// Markers are opaque to clients: base64 of the last item's sort key.
func encodeMarker(key string) *string {
	s := base64.RawURLEncoding.EncodeToString([]byte(key))
	return &s
}

func decodeMarker(req *request) (string, *Error) {
	raw := req.r.URL.Query().Get("Marker")
	if raw == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return "", invalidParameter("Marker %q is not valid; pass the NextMarker of a previous response", truncate(raw, 64))
	}
	return string(b), nil
}

// listFunctions pages through $LATEST configurations, or with
// FunctionVersion=ALL through every configuration (each function's
// $LATEST followed by its versions).
func (h *Handler) listFunctions(req *request) (any, int, *Error) {
	limit, marker, apiErr := pageOf(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	all := false
	switch fv := req.r.URL.Query().Get("FunctionVersion"); fv {
	case "":
	case "ALL":
		all = true
	default:
		return nil, 0, constraint(fv, "functionVersion", "Member must satisfy enum value set: [ALL]")
	}
	v, apiErr := h.consistentView(req)
	if apiErr != nil {
		return nil, 0, apiErr
	}
	out := listFunctionsResponse{Functions: []functionConfiguration{}}
	markerName, markerVersion := splitMarker(marker)
	fns := v.Functions(req.caller.AccountID, markerName, 0)
	if all && markerName != "" {
		// The marker may sit inside a function's versions: resume there.
		if fn := v.Function(req.caller.AccountID, markerName); fn != nil {
			fns = append([]*fsmpb.Function{fn}, fns...)
		}
	}
	for _, fn := range fns {
		rows := []resolved{{fn: fn}}
		if all {
			for _, ver := range v.Versions(fn.AccountId, fn.Name) {
				rows = append(rows, resolved{fn: fn, version: ver})
			}
		}
		for _, rs := range rows {
			if fn.Name == markerName && versionOrder(rowKey(rs)) <= versionOrder(markerVersion) {
				continue
			}
			if len(out.Functions) == limit {
				last := out.Functions[limit-1]
				out.NextMarker = encodeMarker(last.FunctionName + "\x00" + last.Version)
				return out, http.StatusOK, nil
			}
			cfg, apiErr := h.renderConfig(rs)
			if apiErr != nil {
				return nil, 0, apiErr
			}
			out.Functions = append(out.Functions, cfg)
		}
	}
	return out, http.StatusOK, nil
}

func rowKey(rs resolved) string {
	if rs.version == nil {
		return VersionLatest
	}
	return strconv.FormatInt(rs.version.Version, 10)
}

// versionOrder sorts $LATEST before version 1.
func versionOrder(v string) int64 {
	if v == VersionLatest || v == "" {
		return 0
	}
	n, _ := parseVersion(v)
	return n
}

func splitMarker(m string) (name, version string) {
	for i := 0; i < len(m); i++ {
		if m[i] == 0 {
			return m[:i], m[i+1:]
		}
	}
	return m, ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefOr(v *int32, def int32) int32 {
	if v == nil {
		return def
	}
	return *v
}
