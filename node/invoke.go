package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stokehq/stoke/node/codepkg"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// localInvoker runs invocations on this node's sandbox pool. It is the
// worker end of the invoke path: the router (invoke_route.go) admits an
// invocation, places it, and calls run here or on another node
// (invoke_local.go).
type localInvoker struct {
	nodeID string
	// log receives the causes of platform failures, which the caller
	// sees only as a request id (platformError).
	log    *slog.Logger
	region string
	sealer lambdaapi.Sealer
	pool   *runtime.Pool
	// work registers in-flight work with the drain hook; ok is false
	// while the node is leaving.
	work func() (done func(), ok bool)
	// inflight counts invocations running on the pool (this node's load).
	inflight atomic.Int64
	// envs caches opened environments by sandbox key (which includes the
	// configuration revision), so a warm invocation does not decrypt and
	// decode the variables again.
	envs envCache
}

// envCache is a small map of opened environments, emptied when it grows
// past envCacheMax (revisions come and go; the working set is small).
type envCache struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

const envCacheMax = 4096

func (c *envCache) get(key string) (map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	env, ok := c.m[key]
	return env, ok
}

func (c *envCache) put(key string, env map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= envCacheMax {
		c.m = map[string]map[string]string{}
	}
	c.m[key] = env
}

// sandboxKey identifies interchangeable sandboxes: same function, version,
// code and configuration revision.
func sandboxKey(req *lambdaapi.InvokeRequest) string {
	return req.AccountID + "/" + req.FunctionName + "/" + req.Version + "/" + req.Revision
}

func (l *localInvoker) spec(req *lambdaapi.InvokeRequest) (runtime.FunctionSpec, error) {
	cfg := req.Config
	spec := runtime.FunctionSpec{
		Key:                sandboxKey(req),
		FunctionName:       req.FunctionName,
		Version:            req.Version,
		AccountID:          req.AccountID,
		Region:             l.region,
		Runtime:            cfg.Runtime,
		Handler:            cfg.Handler,
		MemoryMB:           int(cfg.MemoryMb),
		EphemeralStorageMB: int(cfg.EphemeralMb),
		Timeout:            time.Duration(cfg.TimeoutS) * time.Second,
		CodeID:             cfg.BlobId,
	}
	if len(cfg.EnvironmentSealed) == 0 {
		return spec, nil
	}
	if env, ok := l.envs.get(spec.Key); ok {
		spec.Environment = env
		return spec, nil
	}
	js, err := l.sealer.Open(cfg.EnvironmentSealed, lambdaapi.EnvContext(req.AccountID, req.FunctionName))
	if err != nil {
		return spec, fmt.Errorf("open environment of %s: %w", req.FunctionName, err)
	}
	if err := json.Unmarshal(js, &spec.Environment); err != nil {
		return spec, fmt.Errorf("decode environment of %s: %w", req.FunctionName, err)
	}
	l.envs.put(spec.Key, spec.Environment)
	return spec, nil
}

// platformError translates an error of the pool (or of preparing its
// call) into the Lambda exception the caller sees. It is the one place a
// worker's failure becomes tenant-visible text, so no message here carries
// the wrapped error: those name host paths (the data directory, the code
// store, cgroup files) and operator detail. The cause goes to the node's
// log under the request id the message quotes.
func (l *localInvoker) platformError(err error, req *lambdaapi.InvokeRequest) error {
	var apiErr *lambdaapi.Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, runtime.ErrColdStartsBusy):
		// A burst of cold starts the node cannot initialise in time: the
		// platform's overload, refused before the function ran, never
		// reported or billed as the function's Init failure.
		return lambdaapi.TooManyRequests(lambdaapi.ReasonFunctionInvocationRateLimitExceeded,
			"Rate Exceeded. The node is starting as many sandboxes as it can and could not start one for this invocation in time; retry later.", 1)
	case errors.Is(err, runtime.ErrSaturated), errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrQueueTimeout):
		return lambdaapi.TooManyRequests(lambdaapi.ReasonConcurrentInvocationLimitExceeded,
			"Rate Exceeded. No worker capacity is free for this invocation right now; retry later.", 1)
	case errors.Is(err, runtime.ErrUnsupportedRuntime):
		// The wrapped text names only the function's runtime.
		return &lambdaapi.Error{Status: http.StatusBadGateway, Type: "InvalidRuntimeException", Message: err.Error()}
	}
	l.logger().Warn("invocation failed on the platform", "request", req.RequestID, "function", req.FunctionName, "account", req.AccountID, "err", err)
	switch {
	case errors.Is(err, runtime.ErrSandboxUnsupported):
		return &lambdaapi.Error{Status: http.StatusBadGateway, Type: "ResourceNotReadyException",
			Message: fmt.Sprintf("Node %s cannot run isolated sandboxes; its operator must fix its setup (request %s).", l.nodeID, req.RequestID)}
	case errors.Is(err, runtime.ErrCode) && (errors.Is(err, codepkg.ErrBadPackage) || errors.Is(err, syscall.ENAMETOOLONG)):
		// A package stored before uploads checked every rule (issue 13:
		// paths too long to unpack); nothing but new code can help.
		return &lambdaapi.Error{Status: http.StatusBadGateway, Type: "InvalidZipFileException",
			Message: fmt.Sprintf("The function's code package cannot be unpacked: it holds a path or entry that no node can create. Upload the code again (UpdateFunctionCode checks every rule) (request %s).", req.RequestID)}
	case errors.Is(err, runtime.ErrCode):
		return &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: fmt.Sprintf("The invocation failed on node %s: the function's code could not be made available there. Retry the request (request %s).", l.nodeID, req.RequestID)}
	case errors.Is(err, runtime.ErrSandboxStart):
		return &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
			Message: fmt.Sprintf("The invocation failed on node %s: a sandbox could not be started. Retry the request (request %s).", l.nodeID, req.RequestID)}
	}
	return &lambdaapi.Error{Status: http.StatusInternalServerError, Type: "ServiceException",
		Message: fmt.Sprintf("The invocation failed on node %s. Retry the request (request %s).", l.nodeID, req.RequestID)}
}

func (l *localInvoker) logger() *slog.Logger {
	if l.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.log
}
