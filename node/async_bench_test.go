package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/async"
)

// Benchmarks of asynchronous invocation on in-process agents with real
// sandboxes, each beside its baseline measured in the same run: the rate
// and latency of synchronous invokes of the same kind of function.
//
//	go test -run '^$' -bench 'BenchmarkAsync' -benchtime 2000x ./node/

func benchPort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// benchAgents starts n agents (n == 1: a dev-mode node; otherwise n
// servers forming a secure cluster through gossip) and waits until they
// are ready.
func benchAgents(b *testing.B, n int, onAttempt func(async.Attempt)) []*Agent {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("async benchmarks run real sandboxes and need root")
	}
	keyFile := filepath.Join(b.TempDir(), "cluster.key")
	var agents []*Agent
	for i := range n {
		cfg := DefaultConfig()
		cfg.NodeID = fmt.Sprintf("b%d", i+1)
		cfg.DataDir = b.TempDir()
		cfg.HTTPAddr, cfg.RaftAddr = "127.0.0.1:0", benchPort(b)
		cfg.Cluster.GossipAddr, cfg.Cluster.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.RaftHeartbeatTimeout, cfg.RaftElectionTimeout = 400*time.Millisecond, 400*time.Millisecond
		cfg.Logger = clustertest.Logger(b, slog.LevelError)
		cfg.NoAuth = true
		cfg.Async.OnAttempt = onAttempt
		cfg.Worker.IdleTimeout = 10 * time.Minute
		if n == 1 {
			cfg.Dev, cfg.Bootstrap = true, true
		} else {
			cfg.ClusterKeyFile = keyFile
			cfg.Cluster.Server, cfg.Cluster.BootstrapExpect = true, n
			cfg.Cluster.MemoryMB, cfg.Cluster.CPUs = 4096, 2
			if i > 0 {
				cfg.Cluster.Join = []string{agents[0].GossipAddr()}
			}
		}
		a, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			<-done
		})
		agents = append(agents, a)
	}
	clustertest.WaitFor(b, 60*time.Second, func() error {
		for _, a := range agents {
			if adminAccount(a) == "" || len(a.Metadata().View().Nodes()) < n {
				return fmt.Errorf("%s not ready", a.NodeID())
			}
		}
		return nil
	})
	return agents
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// benchInvoke sends one invocation and returns its status and request id.
func benchInvoke(a *Agent, fn, invType, body string) (int, string, error) {
	req, err := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/2015-03-31/functions/"+fn+"/invocations", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Amz-Invocation-Type", invType)
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("x-amzn-RequestId"), nil
}

// hammer runs total invocations from clients goroutines, round-robin over
// agents, and returns the rate achieved.
func hammer(b *testing.B, agents []*Agent, fn, invType string, total, clients int, want int) float64 {
	b.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := agents[c%len(agents)]
			for next.Add(1) <= int64(total) {
				status, _, err := benchInvoke(a, fn, invType, `{"mode":"echo"}`)
				if err != nil || status != want {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d %s invocations failed", f, total, invType)
	}
	return float64(total) / elapsed.Seconds()
}

// meanBatch reads the mean group-commit size from an agent's metrics.
func meanBatch(a *Agent) float64 {
	mfs, err := a.MetricsRegistry().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "stoke_async_accept_batch_events" && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() > 0 {
				return h.GetSampleSum() / float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// BenchmarkAsyncAccept: Event invocations accepted per second (each
// fsynced on two nodes and committed to Raft before its 202), on one node
// and on a three-server cluster, against synchronous invokes of a warm
// echo function in the same run. The async target has reserved
// concurrency 0, so deliveries do not compete with acceptance for CPU.
func BenchmarkAsyncAccept(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			agents := benchAgents(b, n, nil)
			deployAsyncFunction(b, "echo", nil, agents...)
			deployAsyncFunction(b, "sink", nil, agents...)
			mustAPI(b, agents[0], http.StatusOK, "PUT", "/2017-10-31/functions/sink/concurrency", map[string]int{"ReservedConcurrentExecutions": 0}, nil)
			// Sixteen clients for sync invokes (about as many warm sandboxes
			// as two cores serve well); 64 for acceptance, which holds no
			// sandbox while it waits and batches what arrives meanwhile.
			const clients, asyncClients = 16, 64
			clustertest.WaitFor(b, 10*time.Second, func() error {
				for _, a := range agents {
					if !a.Metadata().View().Function(adminAccount(a), "sink").GetHasReservedConcurrency() {
						return fmt.Errorf("%s has not seen the configuration", a.NodeID())
					}
				}
				return nil
			})
			hammer(b, agents, "echo", "RequestResponse", 4*clients, clients, http.StatusOK) // warm sandboxes
			b.ResetTimer()
			syncRate := hammer(b, agents, "echo", "RequestResponse", b.N, clients, http.StatusOK)
			acceptRate := hammer(b, agents, "sink", "Event", b.N, asyncClients, http.StatusAccepted)
			b.StopTimer()
			b.ReportMetric(acceptRate, "accepted/s")
			b.ReportMetric(syncRate, "sync-invokes/s")
			b.ReportMetric(acceptRate/syncRate, "accept/sync")
			b.ReportMetric(meanBatch(agents[0]), "events/commit")
		})
	}
}

// BenchmarkAsyncStartDelay: time from sending an Event invocation to the
// queue handing it to the invoke path (send→202 and 202→start), with an
// idle queue and behind a backlog of another function's events, against
// the round trip of a synchronous invoke of the same function in the same
// run. One node.
func BenchmarkAsyncStartDelay(b *testing.B) {
	for _, backlog := range []int{0, 3000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			// The attempt may start before the client has read its 202, so
			// start times are recorded for every event and looked up after.
			var mu sync.Mutex
			startedAt := map[string]time.Time{}
			signal := make(chan struct{}, 1)
			agents := benchAgents(b, 1, func(at async.Attempt) {
				mu.Lock()
				startedAt[at.EventID] = at.Started
				mu.Unlock()
				select {
				case signal <- struct{}{}:
				default:
				}
			})
			a := agents[0]
			deployAsyncFunction(b, "probe", nil, a)
			deployAsyncFunction(b, "busy", nil, a)
			mustAPI(b, a, http.StatusOK, "PUT", "/2017-10-31/functions/busy/concurrency", map[string]int{"ReservedConcurrentExecutions": 2}, nil)
			hammer(b, agents, "probe", "RequestResponse", 4, 1, http.StatusOK)
			if backlog > 0 {
				for range backlog / 100 {
					var wg sync.WaitGroup
					for range 100 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if status, _, err := benchInvoke(a, "busy", "Event", `{"mode":"sleep","ms":5}`); err != nil || status != http.StatusAccepted {
								b.Errorf("backlog event: %d %v", status, err)
							}
						}()
					}
					wg.Wait()
				}
			}
			var syncRTT, toAccept, toStart []time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if status, _, err := benchInvoke(a, "probe", "RequestResponse", `{}`); err != nil || status != http.StatusOK {
					b.Fatalf("sync invoke: %d %v", status, err)
				}
				syncRTT = append(syncRTT, time.Since(t0))

				t0 = time.Now()
				status, id, err := benchInvoke(a, "probe", "Event", `{}`)
				t202 := time.Now()
				if err != nil || status != http.StatusAccepted {
					b.Fatalf("event: %d %v", status, err)
				}
				timeout := time.After(30 * time.Second)
				var started time.Time
				for started.IsZero() {
					mu.Lock()
					started = startedAt[id]
					mu.Unlock()
					if !started.IsZero() {
						break
					}
					select {
					case <-signal:
					case <-timeout:
						b.Fatalf("event %s not started within 30 s", id)
					}
				}
				toAccept = append(toAccept, t202.Sub(t0))
				toStart = append(toStart, started.Sub(t0))
			}
			b.StopTimer()
			pending, _ := a.Metadata().View().AsyncEventCounts()
			med := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Microseconds()) / 1000
			}
			p99 := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[min(len(d)-1, len(d)*99/100)].Microseconds()) / 1000
			}
			b.ReportMetric(med(toAccept), "ms-send→202-p50")
			b.ReportMetric(med(toStart)-med(toAccept), "ms-202→start-p50")
			b.ReportMetric(p99(toStart), "ms-send→start-p99")
			b.ReportMetric(med(syncRTT), "ms-sync-rtt-p50")
			b.ReportMetric(med(toStart)/med(syncRTT), "start/sync-rtt")
			b.ReportMetric(float64(pending), "backlog-left")
		})
	}
}
