package lambdaapi

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxFunctionLabels bounds the distinct (account, function) label pairs:
// past it, functions share the function label "_other" (their account label
// stays), so tenants creating thousands of functions cannot blow up the
// metrics' cardinality.
const MaxFunctionLabels = 500

// Metrics are the invocation metrics served at /metrics. Every series is
// labelled with the account and the function name: two tenants' functions
// of the same name are two series, never one.
type Metrics struct {
	invocations *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	concurrent  *prometheus.GaugeVec
	coldStarts  *prometheus.CounterVec
	initTime    *prometheus.HistogramVec

	mu    sync.Mutex
	names map[fnLabel]bool
}

// fnLabel is one function's label pair.
type fnLabel struct{ account, function string }

// NewMetrics registers the invocation metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_invocations_total", Help: "Invocations by function and outcome (success, function_error, throttled, error).",
		}, []string{"account", "function", "outcome"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_throttles_total", Help: "Invocations refused with TooManyRequestsException, by reason.",
		}, []string{"account", "function", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoke_invocation_duration_seconds", Help: "Function duration as billed (sandbox time).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"account", "function"}),
		concurrent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stoke_concurrent_executions", Help: "Invocations in flight through this node's API.",
		}, []string{"account", "function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stoke_cold_starts_total", Help: "Invocations that started a new sandbox.",
		}, []string{"account", "function"}),
		initTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stoke_init_duration_seconds", Help: "Init duration of cold starts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"account", "function"}),
		names: map[fnLabel]bool{},
	}
	reg.MustRegister(m.invocations, m.throttles, m.duration, m.concurrent, m.coldStarts, m.initTime)
	return m
}

func (m *Metrics) label(account, function string) fnLabel {
	l := fnLabel{account, function}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[l] {
		return l
	}
	if len(m.names) >= MaxFunctionLabels {
		return fnLabel{account, "_other"}
	}
	m.names[l] = true
	return l
}

// begin marks one invocation of the account's function in flight and
// returns the func that records its outcome when it ends. The function's
// labels are looked up once for both. Safe on a nil *Metrics.
func (m *Metrics) begin(account, function string) (end func(*InvokeResult, error)) {
	if m == nil {
		return func(*InvokeResult, error) {}
	}
	fn := m.label(account, function)
	g := m.concurrent.WithLabelValues(fn.account, fn.function)
	g.Inc()
	return func(res *InvokeResult, err error) {
		g.Dec()
		m.observe(fn, res, err)
	}
}

// observe records one finished invocation of the function labelled fn.
func (m *Metrics) observe(l fnLabel, res *InvokeResult, err error) {
	acct, fn := l.account, l.function
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Type == "TooManyRequestsException":
		m.invocations.WithLabelValues(acct, fn, "throttled").Inc()
		m.throttles.WithLabelValues(acct, fn, apiErr.Reason).Inc()
		return
	case err != nil:
		m.invocations.WithLabelValues(acct, fn, "error").Inc()
		return
	case res.FunctionError != "":
		m.invocations.WithLabelValues(acct, fn, "function_error").Inc()
	default:
		m.invocations.WithLabelValues(acct, fn, "success").Inc()
	}
	m.duration.WithLabelValues(acct, fn).Observe(res.Duration.Seconds())
	if res.ColdStart {
		m.coldStarts.WithLabelValues(acct, fn).Inc()
		m.initTime.WithLabelValues(acct, fn).Observe(res.InitDuration.Seconds())
	}
}
