package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/node/lambdaapi"
)

// invokeRequest builds the request the Lambda API would for $LATEST of
// name, from a's replica.
func invokeRequest(tb testing.TB, a *Agent, account, name string, payload []byte) *lambdaapi.InvokeRequest {
	tb.Helper()
	fn := a.Metadata().View().Function(account, name)
	if fn == nil {
		tb.Fatalf("%s does not have %s", a.NodeID(), name)
	}
	return &lambdaapi.InvokeRequest{RequestID: "bench", AccountID: account, FunctionName: name, Version: lambdaapi.VersionLatest,
		Config: fn.Config, Revision: fn.RevisionId, Payload: payload}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkInvokeForwarded measures the cost of the forwarding hop: the
// same warm function (Python echo, 128 MB) invoked through the router of
// its home node, where it runs locally, and through another node's router,
// which finds no warm sandbox locally and forwards it over one gRPC hop
// (mutual TLS, the cluster token). Samples alternate in one loop, so both
// see the same machine. Reported: p50/p99 of each, the added p50, and for
// reference the p50 of a bare node-to-node RPC (Cluster.Status) on the same
// connection, the floor any hop pays on this machine.
//
//	go test -run '^$' -bench InvokeForwarded -benchtime 3000x ./node/
func BenchmarkInvokeForwarded(b *testing.B) {
	c := startRoutingClusterN(b, 2, nil)
	name := c.nameHomedOn(b, "bench", "s2")
	c.deploy(b, name)
	home, other := c.agent("s2"), c.agent("s1")
	ctx := context.Background()
	payload := []byte(`{"hello":"world"}`)
	reqHome := invokeRequest(b, home, c.account, name, payload)
	reqOther := invokeRequest(b, other, c.account, name, payload)
	for range 50 { // warm: the sandbox, the connection, the leases
		for _, x := range []struct {
			a   *Agent
			req *lambdaapi.InvokeRequest
		}{{home, reqHome}, {other, reqOther}} {
			res, err := x.a.invoker.Invoke(ctx, x.req)
			if err != nil || res.Node != "s2" {
				b.Fatalf("warm-up via %s: %v on %v", x.a.NodeID(), err, res)
			}
		}
	}
	var local, forwarded, rtt []time.Duration
	b.ResetTimer()
	for b.Loop() {
		// Reference: the cheapest node-to-node call there is (Status, a
		// unary RPC on the same authenticated connection).
		ts := time.Now()
		if _, err := other.forwarder.Status(ctx, home.GRPCAddr()); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(ts))
		t0 := time.Now()
		if _, err := home.invoker.Invoke(ctx, reqHome); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		res, err := other.invoker.Invoke(ctx, reqOther)
		if err != nil || res.Node != "s2" {
			b.Fatalf("forwarded: %v on %v", err, res)
		}
		local, forwarded = append(local, t1.Sub(t0)), append(forwarded, time.Since(t1))
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	lp50, fp50 := percentile(local, 0.5), percentile(forwarded, 0.5)
	b.ReportMetric(us(lp50), "local-p50-µs")
	b.ReportMetric(us(percentile(local, 0.99)), "local-p99-µs")
	b.ReportMetric(us(fp50), "fwd-p50-µs")
	b.ReportMetric(us(percentile(forwarded, 0.99)), "fwd-p99-µs")
	b.ReportMetric(us(fp50-lp50), "added-p50-µs")
	b.ReportMetric(float64(fp50)/float64(lp50), "fwd/local-p50")
	b.ReportMetric(us(percentile(rtt, 0.5)), "bare-rpc-p50-µs")
}

// BenchmarkClusterThroughput compares the invocations per second a
// three-node cluster and a one-node cluster sustain on this machine, all
// nodes sharing its cores: 24 clients invoke 12 warm functions (Python
// echo) over HTTP, round-robin over the cluster's nodes. Rounds alternate
// between the clusters so both see the same load from the rest of the
// machine; reported are the rates and their ratio.
//
//	go test -run '^$' -bench ClusterThroughput -benchtime 1x ./node/
func BenchmarkClusterThroughput(b *testing.B) {
	const (
		functions = 12
		clients   = 24
		perRound  = 2400
		rounds    = 3
	)
	clusters := map[int]*routingCluster{}
	for _, n := range []int{1, 3} {
		c := startRoutingClusterN(b, n, nil)
		for f := range functions {
			c.deploy(b, fmt.Sprint("tp-", f))
		}
		clusters[n] = c
	}
	run := func(c *routingCluster, total int) (time.Duration, int64) {
		nodes := c.live()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(total) {
						return
					}
					r := invoke(b, nodes[(int(i)+cl)%len(nodes)], "tp-"+strconv.Itoa(int(i)%functions), "", []byte(`{"i":1}`))
					if r.status != http.StatusOK {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), failed.Load()
	}
	for _, n := range []int{1, 3} {
		run(clusters[n], 600) // warm every function's sandboxes and the leases
	}
	b.ResetTimer()
	var elapsed [4]time.Duration
	for b.Loop() {
		for range rounds {
			for _, n := range []int{1, 3} {
				d, failed := run(clusters[n], perRound)
				if failed > 0 {
					b.Fatalf("%d of %d invocations failed on the %d-node cluster", failed, perRound, n)
				}
				elapsed[n] += d
			}
		}
	}
	b.StopTimer()
	rate := func(n int) float64 { return float64(b.N*rounds*perRound) / elapsed[n].Seconds() }
	b.ReportMetric(rate(1), "1node-inv/s")
	b.ReportMetric(rate(3), "3node-inv/s")
	b.ReportMetric(rate(3)/rate(1), "3node/1node")
}
