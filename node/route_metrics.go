package node

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// routeMetrics count the router's attempts, so an operator sees how often
// invocations find a warm sandbox, spill over, or meet unreachable nodes.
type routeMetrics struct {
	attempts *prometheus.CounterVec
}

func newRouteMetrics(reg prometheus.Registerer) *routeMetrics {
	m := &routeMetrics{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stoke_invoke_attempts_total",
		Help: "Attempts to run an invocation on a node, by pass (warm_only, no_queue, queue), target (local, remote), outcome (ran, refused, unreachable, unknown) and refusal reason.",
	}, []string{"pass", "target", "outcome", "reason"})}
	if reg != nil {
		reg.MustRegister(m.attempts)
	}
	return m
}

// attempt records one attempt. Safe on a nil *routeMetrics.
func (m *routeMetrics) attempt(mode rpcpb.InvokeMode, local bool, out outcome, ref refusal) {
	if m == nil {
		return
	}
	target := "remote"
	if local {
		target = "local"
	}
	reason := ""
	if ref.refused() {
		reason = strings.ToLower(strings.TrimPrefix(ref.reason.String(), "REFUSAL_REASON_"))
	}
	pass := strings.ToLower(strings.TrimPrefix(mode.String(), "INVOKE_MODE_"))
	m.attempts.WithLabelValues(pass, target, out.String(), reason).Inc()
}
