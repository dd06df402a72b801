package async

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the queue's Prometheus series, labelled by account and
// function name (two tenants' functions of one name are two series). Counters count this node's
// work; queue depth and oldest age describe the events this node owns, so
// a cluster-wide figure is the sum (depth) or max (age) over nodes. Names
// in Lambda's CloudWatch terms: AsyncEventsReceived = accepted,
// AsyncEventAge = event_age_seconds, AsyncEventsDropped = dropped,
// DeadLetterErrors = dead_letter_errors, DestinationDeliveryFailures =
// destination_delivery_failures.
type metrics struct {
	accepted       *prometheus.CounterVec
	batchSize      prometheus.Histogram
	underReplica   prometheus.Counter
	delivered      *prometheus.CounterVec
	retried        *prometheus.CounterVec
	expired        *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	dlqErrors      *prometheus.CounterVec
	destFailures   *prometheus.CounterVec
	eventAge       *prometheus.HistogramVec
	repaired       prometheus.Counter
	settleFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, q *Queue) *metrics {
	fn := []string{"account", "function"}
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_events_accepted_total",
			Help: "Event invocations this node acknowledged with 202 (stored on every holder and committed)."}, fn),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stoke_async_accept_batch_events",
			Help: "Events per group commit (one fsync per holder and one Raft entry each).", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		underReplica: prometheus.NewCounter(prometheus.CounterOpts{Name: "stoke_async_underreplicated_total",
			Help: "Events acknowledged with fewer payload copies than configured (too few live nodes)."}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_events_delivered_total",
			Help: "Events whose invocation succeeded."}, fn),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_retries_total",
			Help: "Delivery attempts that will be retried, by reason (function_error, throttled, system_error)."}, []string{"account", "function", "reason"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_events_expired_total",
			Help: "Events that reached their maximum age before succeeding."}, fn),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_events_dead_lettered_total",
			Help: "Failed events handed to a dead-letter target or on-failure destination, by target kind (stoke-dlq, function)."}, []string{"account", "function", "target"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_events_dropped_total",
			Help: "Events discarded without a target to keep them (Lambda's AsyncEventsDropped), by reason."}, []string{"account", "function", "reason"}),
		dlqErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_dead_letter_errors_total",
			Help: "Failed attempts to send an event to its dead-letter target (Lambda's DeadLetterErrors)."}, fn),
		destFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoke_async_destination_delivery_failures_total",
			Help: "Failed attempts to send a record to a destination (Lambda's DestinationDeliveryFailures)."}, fn),
		eventAge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stoke_async_event_age_seconds",
			Help:    "Time from acceptance to each invocation (Lambda's AsyncEventAge).",
			Buckets: []float64{0.005, 0.025, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 7200, 21600}}, fn),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Name: "stoke_async_payloads_rereplicated_total",
			Help: "Payloads copied to a new holder after a holder died."}),
		settleFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "stoke_async_settle_failures_total",
			Help: "Outcome batches that could not be committed and were retried."}),
	}
	if reg == nil {
		return m
	}
	for _, c := range []prometheus.Collector{m.accepted, m.batchSize, m.underReplica, m.delivered, m.retried, m.expired,
		m.deadLettered, m.dropped, m.dlqErrors, m.destFailures, m.eventAge, m.repaired, m.settleFailures, &queueCollector{q: q}} {
		reg.MustRegister(c)
	}
	return m
}

// queueCollector reports the owned queue's depth and oldest event age per
// function, and the payload log's size, at scrape time.
type queueCollector struct{ q *Queue }

var (
	depthDesc = prometheus.NewDesc("stoke_async_queue_depth",
		"Events this node owns that are waiting for delivery (including ones being retried).", []string{"account", "function"}, nil)
	oldestDesc = prometheus.NewDesc("stoke_async_oldest_event_age_seconds",
		"Age of the oldest event this node owns.", []string{"account", "function"}, nil)
	payloadsDesc = prometheus.NewDesc("stoke_async_payload_log_events",
		"Payloads held in this node's payload log (as owner or copy).", nil, nil)
	payloadBytesDesc = prometheus.NewDesc("stoke_async_payload_log_bytes",
		"Bytes of this node's payload log segments on disk.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- oldestDesc
	ch <- payloadsDesc
	ch <- payloadBytesDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for key, d := range c.q.sched.depth() {
		acct, fn, _ := strings.Cut(key, "/")
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(d.count), acct, fn)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, now.Sub(d.oldest).Seconds(), acct, fn)
	}
	n, _, bytes := c.q.store.Stats()
	ch <- prometheus.MustNewConstMetric(payloadsDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(payloadBytesDesc, prometheus.GaugeValue, float64(bytes))
}
