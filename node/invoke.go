package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// localInvoker runs invocations on this node's sandbox pool after
// admission. It is the worker end of the invoke path; routing to other
// nodes wraps it.
type localInvoker struct {
	nodeID string
	region string
	meta   *Metadata
	sealer lambdaapi.Sealer
	admit  admission.Admitter
	pool   *runtime.Pool
	// work registers in-flight work with the drain hook; ok is false
	// while the node is leaving.
	work func() (done func(), ok bool)
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
	if len(cfg.EnvironmentSealed) > 0 {
		js, err := l.sealer.Open(cfg.EnvironmentSealed, lambdaapi.EnvContext(req.AccountID, req.FunctionName))
		if err != nil {
			return spec, fmt.Errorf("open environment of %s: %w", req.FunctionName, err)
		}
		if err := json.Unmarshal(js, &spec.Environment); err != nil {
			return spec, fmt.Errorf("decode environment of %s: %w", req.FunctionName, err)
		}
	}
	return spec, nil
}

func (l *localInvoker) Invoke(ctx context.Context, req *lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	done, ok := l.work()
	if !ok {
		return nil, &lambdaapi.Error{Status: 503, Type: "ServiceException", Message: "This node is leaving the cluster; send the invocation to another node"}
	}
	defer done()
	release, err := l.admitRequest(req)
	if err != nil {
		return nil, err
	}
	defer release()
	spec, err := l.spec(req)
	if err != nil {
		return nil, err
	}
	res, err := l.pool.Invoke(ctx, spec, runtime.Invocation{
		RequestID:          req.RequestID,
		Payload:            req.Payload,
		InvokedFunctionARN: req.InvokedARN,
		ClientContext:      req.ClientContext,
	})
	if err != nil {
		return nil, poolError(err)
	}
	return &lambdaapi.InvokeResult{
		Payload:       res.Payload,
		FunctionError: res.FunctionError,
		LogTail:       res.LogTail,
		Node:          l.nodeID,
		ColdStart:     res.ColdStart,
		InitDuration:  res.InitDuration,
		Duration:      res.Duration,
	}, nil
}

func (l *localInvoker) admitRequest(req *lambdaapi.InvokeRequest) (func(), error) {
	v := l.meta.View()
	acct := v.Account(req.AccountID)
	if acct == nil {
		return nil, fmt.Errorf("account %s is not in the local replica", req.AccountID)
	}
	release, err := l.admit.Admit(admission.Request{
		AccountID:     req.AccountID,
		Function:      req.FunctionName,
		Reserved:      req.ReservedConcurrency,
		AccountLimit:  int(acct.ConcurrencyLimit),
		ReservedTotal: int(v.ReservedConcurrency(req.AccountID, "")),
	})
	var te *admission.ThrottleError
	if errors.As(err, &te) {
		return nil, lambdaapi.TooManyRequests(te.Reason, te.Error(), 1)
	}
	return release, err
}

// poolError maps the pool's platform errors onto Lambda exceptions.
func poolError(err error) error {
	switch {
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
