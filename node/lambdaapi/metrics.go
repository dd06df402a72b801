package lambdaapi

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxFunctionLabels bounds the distinct function label values: past it,
// functions share the label "_other", so a tenant creating thousands of
// functions cannot blow up the metrics' cardinality.
const MaxFunctionLabels = 500

// Metrics are the invocation metrics served at /metrics.
type Metrics struct {
	invocations *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	concurrent  *prometheus.GaugeVec
	coldStarts  *prometheus.CounterVec
	initTime    *prometheus.HistogramVec

	mu    sync.Mutex
	names map[string]bool
}

// NewMetrics registers the invocation metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_invocations_total", Help: "Invocations by function and outcome (success, function_error, throttled, error).",
		}, []string{"function", "outcome"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_throttles_total", Help: "Invocations refused with TooManyRequestsException, by reason.",
		}, []string{"function", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoke_invocation_duration_seconds", Help: "Function duration as billed (sandbox time).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"function"}),
		concurrent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoke_concurrent_executions", Help: "Invocations in flight through this node's API.",
		}, []string{"function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_cold_starts_total", Help: "Invocations that started a new sandbox.",
		}, []string{"function"}),
		initTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoke_init_duration_seconds", Help: "Init duration of cold starts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"function"}),
		names: map[string]bool{},
	}
	reg.MustRegister(m.invocations, m.throttles, m.duration, m.concurrent, m.coldStarts, m.initTime)
	return m
}

func (m *Metrics) label(function string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[function] {
		return function
	}
	if len(m.names) >= MaxFunctionLabels {
		return "_other"
	}
	m.names[function] = true
	return function
}

// begin marks one invocation of function in flight and returns the func
// that records its outcome when it ends. The function's label is looked up
// once for both. Safe on a nil *Metrics.
func (m *Metrics) begin(function string) (end func(*InvokeResult, error)) {
	if m == nil {
		return func(*InvokeResult, error) {}
	}
	fn := m.label(function)
	g := m.concurrent.WithLabelValues(fn)
	g.Inc()
	return func(res *InvokeResult, err error) {
		g.Dec()
		m.observe(fn, res, err)
	}
}

// observe records one finished invocation of the function labelled fn.
func (m *Metrics) observe(fn string, res *InvokeResult, err error) {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Type == "TooManyRequestsException":
		m.invocations.WithLabelValues(fn, "throttled").Inc()
		m.throttles.WithLabelValues(fn, apiErr.Reason).Inc()
		return
	case err != nil:
		m.invocations.WithLabelValues(fn, "error").Inc()
		return
	case res.FunctionError != "":
		m.invocations.WithLabelValues(fn, "function_error").Inc()
	default:
		m.invocations.WithLabelValues(fn, "success").Inc()
	}
	m.duration.WithLabelValues(fn).Observe(res.Duration.Seconds())
	if res.ColdStart {
		m.coldStarts.WithLabelValues(fn).Inc()
		m.initTime.WithLabelValues(fn).Observe(res.InitDuration.Seconds())
	}
}
