package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// CodeStats counts what the node's code replication did since it started.
// Tests read it through Agent.CodeStats; /metrics exports it.
type CodeStats struct {
	// Fetches is the number of blob fetches this node ran (one per miss,
	// however many callers shared it); FetchErrors how many failed on
	// every source; FetchWaiters how many callers joined a fetch already
	// running.
	Fetches, FetchErrors, FetchWaiters int64
	// Pushes is the number of blobs this node pushed to peers on upload.
	Pushes int64
	// BytesSent and BytesReceived count blob data on node-to-node streams.
	BytesSent, BytesReceived int64
	// Corruptions is the number of local copies found corrupt (on read
	// or by the scrub); Refetched how many of those were fetched again.
	Corruptions, Refetched int64
	// Repairs is the number of copies the leader had made on other nodes.
	Repairs int64
	// Collected is the number of local copies deleted because no record
	// or reference was left.
	Collected int64
	// Scrubbed is the number of blobs the scrub verified.
	Scrubbed int64
}

type codeCounters struct {
	fetches, fetchErrors, fetchWaiters, pushes atomic.Int64
	bytesSent, bytesReceived                   atomic.Int64
	corruptions, refetched, repairs            atomic.Int64
	collected, scrubbed                        atomic.Int64
}

func (c *codeCounters) snapshot() CodeStats {
	return CodeStats{
		Fetches: c.fetches.Load(), FetchErrors: c.fetchErrors.Load(), FetchWaiters: c.fetchWaiters.Load(),
		Pushes: c.pushes.Load(), BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load(),
		Corruptions: c.corruptions.Load(), Refetched: c.refetched.Load(), Repairs: c.repairs.Load(),
		Collected: c.collected.Load(), Scrubbed: c.scrubbed.Load(),
	}
}

// register exports the counters on reg (nil: not exported).
func (c *codeCounters) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "stoke", Subsystem: "code", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	for _, col := range []prometheus.Collector{
		counter("fetches_total", "Blob fetches from peers (one per miss, shared by concurrent callers).", &c.fetches),
		counter("fetch_errors_total", "Blob fetches that failed on every source.", &c.fetchErrors),
		counter("fetch_waiters_total", "Callers that joined a fetch already running.", &c.fetchWaiters),
		counter("pushes_total", "Blobs pushed to peers on upload.", &c.pushes),
		counter("sent_bytes_total", "Blob data sent to peers.", &c.bytesSent),
		counter("received_bytes_total", "Blob data received from peers.", &c.bytesReceived),
		counter("corruptions_total", "Local blob copies found corrupt.", &c.corruptions),
		counter("refetched_total", "Corrupt local copies fetched again.", &c.refetched),
		counter("repairs_total", "Copies made on other nodes to restore the replica count.", &c.repairs),
		counter("collected_total", "Local blob copies deleted after their record or last reference went.", &c.collected),
		counter("scrubbed_total", "Blobs verified by the periodic scrub.", &c.scrubbed),
	} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	return nil
}
