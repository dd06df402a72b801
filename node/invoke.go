package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// localInvoker runs invocations on this node's sandbox pool. It is the
// worker end of the invoke path: the router (invoke_route.go) admits an
// invocation, places it, and calls run here or on another node
// (invoke_local.go).
type localInvoker struct {
	nodeID string
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

// poolError maps the pool's platform errors onto Lambda exceptions.
func poolError(err error) error {
	switch {
	case errors.Is(err, runtime.ErrColdStartsBusy):
		// A burst of cold starts the node cannot initialise in time: the
		// platform's overload, refused before the function ran, never
		// reported or billed as the function's Init failure.
		return lambdaapi.TooManyRequests(lambdaapi.ReasonFunctionInvocationRateLimitExceeded,
			"Rate Exceeded. The node is starting as many sandboxes as it can and could not start one for this invocation in time; retry later.", 1)
	case errors.Is(err, runtime.ErrSaturated), errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrQueueTimeout):
		return lambdaapi.TooManyRequests(lambdaapi.ReasonConcurrentInvocationLimitExceeded,
			"Rate Exceeded. No worker capacity is free for this invocation right now; retry later.", 1)
	case errors.Is(err, runtime.ErrSandboxUnsupported):
		return &lambdaapi.Error{Status: 502, Type: "ResourceNotReadyException", Message: err.Error()}
	case errors.Is(err, runtime.ErrUnsupportedRuntime):
		return &lambdaapi.Error{Status: 502, Type: "InvalidRuntimeException", Message: err.Error()}
	}
	return err
}
