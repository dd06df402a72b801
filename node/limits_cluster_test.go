package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// burst runs clients concurrently; each invokes name (spread round-robin
// over nodes, each invocation running ms milliseconds) until it has two
// successes or tries refusals. Like an SDK, a client pauses briefly after
// a 429 (a jittered 50-150 ms: shorter than Retry-After, to keep the test
// short) and moves on to the next node when one does not answer. Outcomes
// are tallied as "ok", the 429 Reason, or the status and error type.
func burst(t *testing.T, nodes []*Agent, name, tag string, clients, tries, ms int) *outcomes {
	t.Helper()
	var out outcomes
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cl), 1))
			ok, refused := 0, 0
			for i := 0; i < 3*tries && ok < 2 && refused < tries; i++ {
				r := invoke(t, nodes[(cl+i)%len(nodes)], name, "", runPayload(fmt.Sprintf("%s-%d-%d", tag, cl, i), ms))
				switch {
				case r.status == http.StatusOK:
					ok++
					out.add("ok")
				case r.status < 0:
					out.addExample("unreachable", r.body)
				case r.status == http.StatusTooManyRequests && r.retry != "":
					refused++
					out.add(r.reason)
					<-time.After(time.Duration(50+rng.IntN(100)) * time.Millisecond)
				default:
					refused++
					out.addExample(fmt.Sprintf("%d %s", r.status, r.errTyp), r.body)
				}
			}
		}()
	}
	wg.Wait()
	return &out
}

// setAccountLimit sets the account's concurrency limit and waits until
// every replica has it.
func (c *routingCluster) setAccountLimit(t *testing.T, limit, unreservedMin int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if _, err := c.live()[0].Metadata().Apply(ctx, &fsmpb.UpdateAccountCmd{Header: &fsmpb.Header{},
		AccountId: c.account, ConcurrencyLimit: limit, UnreservedMinimum: unreservedMin}); err != nil {
		t.Fatal(err)
	}
	c.waitReplicas(t, func(v *Agent) bool { return v.Metadata().View().Account(c.account).ConcurrencyLimit == limit })
}

func (c *routingCluster) waitReplicas(t *testing.T, ok func(*Agent) bool) {
	t.Helper()
	clustertest.WaitFor(t, clusterWait, func() error {
		for _, a := range c.live() {
			if !ok(a) {
				return fmt.Errorf("%s has not caught up", a.NodeID())
			}
		}
		return nil
	})
}

// TestConcurrencyLimitsCluster checks issue 6's concurrency scenarios on
// three nodes with the default placement: overlap measured from the
// function's side (its own start and end lines in every node's logs)
// never exceeds the account limit or a reserved concurrency, the surplus
// gets 429 with the right Reason and a Retry-After, a reservation keeps
// its capacity while the rest of the account is saturated, and the limit
// still holds when a node dies mid-run.
func TestConcurrencyLimitsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with 200 concurrent clients; skipped with -short")
	}
	const limit = 50
	c := startRoutingCluster(t, nil)
	c.setAccountLimit(t, limit, 10)
	nodes := c.live()
	c.deploy(t, "unres")
	c.deploy(t, "resv")

	t.Run("account limit across three nodes", func(t *testing.T) {
		stop := make(chan struct{})
		usage := make(chan int, 1)
		go func() { usage <- c.peakUsage(nodes[1], stop) }()
		out := burst(t, nodes, "unres", "a", 200, 6, 300)
		close(stop)
		peakUsage := <-usage
		runs := c.functionRuns(t, "unres", math.Inf(1))
		overlap := maxOverlap(runs)
		t.Logf("outcomes %s; %d runs; overlap %d; peak cluster-wide usage reported %d", out, len(runs), overlap, peakUsage)
		switch {
		case overlap > limit:
			t.Fatalf("%d invocations ran at once, account limit %d", overlap, limit)
		case out.get("ok") == 0 || out.get(lambdaapi.ReasonConcurrentInvocationLimitExceeded) == 0:
			t.Fatalf("want successes and throttles from 200 clients against a limit of %d: %s", limit, out)
		case out.get("ok")+out.get(lambdaapi.ReasonConcurrentInvocationLimitExceeded) != total(out):
			t.Fatalf("outcomes other than success or a 429 with the account reason and Retry-After: %s", out)
		case overlap < limit/4:
			t.Fatalf("only %d invocations ever ran at once: the leases never let the pool fill", overlap)
		case peakUsage < 1 || peakUsage > limit:
			t.Fatalf("GetAccountSettings reported a peak of %d concurrent executions", peakUsage)
		}
	})

	t.Run("reserved concurrency guarantees and caps", func(t *testing.T) {
		const reserved = 20
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		if _, err := nodes[0].Metadata().Apply(ctx, &fsmpb.PutFunctionConcurrencyCmd{
			Header: &fsmpb.Header{AccountId: c.account}, Name: "resv", Reserved: reserved}); err != nil {
			t.Fatal(err)
		}
		c.waitReplicas(t, func(a *Agent) bool { return a.Metadata().View().Function(c.account, "resv").HasReservedConcurrency })
		// Slices of the unreserved pool leased before the reservation
		// existed are not revoked (the account-wide sum stays within 50
		// regardless); the pool drains to its new limit of 30 as they are
		// renewed. Measure from then on.
		clustertest.WaitFor(t, clusterWait, func() error {
			slots := 0
			for _, a := range nodes {
				for _, p := range a.leases.Pools() {
					if p.Pool.AccountID == c.account && p.Pool.Function == "" {
						slots += p.Slots
					}
				}
			}
			if slots > limit-reserved {
				return fmt.Errorf("the nodes still hold %d slots of the unreserved pool", slots)
			}
			return nil
		})
		var wg sync.WaitGroup
		var outR, outU *outcomes
		wg.Add(2)
		go func() { defer wg.Done(); outR = burst(t, nodes, "resv", "r", 100, 6, 300) }()
		go func() { defer wg.Done(); outU = burst(t, nodes, "unres", "u", 100, 6, 300) }()
		wg.Wait()
		runsR := c.functionRuns(t, "resv", math.Inf(1))
		runsU := c.functionRuns(t, "unres", math.Inf(1))
		since := func(runs []run, tag string) []run { // this subtest's runs only
			var out []run
			for _, r := range runs {
				if r.token[0] == tag[0] {
					out = append(out, r)
				}
			}
			return out
		}
		runsR, runsU = since(runsR, "r"), since(runsU, "u")
		oR, oU, oAll := maxOverlap(runsR), maxOverlap(runsU), maxOverlap(append(append([]run{}, runsR...), runsU...))
		t.Logf("reserved: %s overlap %d; unreserved: %s overlap %d; together %d", outR, oR, outU, oU, oAll)
		switch {
		case oR > reserved:
			t.Fatalf("the reserved function ran %d at once, reserved %d", oR, reserved)
		case oU > limit-reserved:
			t.Fatalf("the other function ran %d at once; the unreserved pool is %d", oU, limit-reserved)
		case oAll > limit:
			t.Fatalf("%d ran at once, account limit %d", oAll, limit)
		case outR.get(lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit) == 0 || outR.get("ok") == 0 ||
			outR.get("ok")+outR.get(lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit) != total(outR):
			t.Fatalf("reserved function outcomes: %s", outR)
		case outU.get(lambdaapi.ReasonConcurrentInvocationLimitExceeded) == 0 || outU.get("ok") == 0 ||
			outU.get("ok")+outU.get(lambdaapi.ReasonConcurrentInvocationLimitExceeded) != total(outU):
			t.Fatalf("unreserved function outcomes: %s", outU)
		case oR < reserved/4:
			t.Fatalf("the reserved function never ran more than %d at once while the account was saturated", oR)
		}
		// Reserved concurrency 0 throttles always.
		if _, err := nodes[0].Metadata().Apply(ctx, &fsmpb.PutFunctionConcurrencyCmd{
			Header: &fsmpb.Header{AccountId: c.account}, Name: "resv", Reserved: 0}); err != nil {
			t.Fatal(err)
		}
		c.waitReplicas(t, func(a *Agent) bool { return a.Metadata().View().Function(c.account, "resv").ReservedConcurrency == 0 })
		for _, a := range nodes {
			if r := invoke(t, a, "resv", "", runPayload("zero", 0)); r.status != http.StatusTooManyRequests ||
				r.reason != lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit {
				t.Fatalf("reserved 0 via %s: %d %s %s", a.NodeID(), r.status, r.reason, r.body)
			}
		}
		if _, err := nodes[0].Metadata().Apply(ctx, &fsmpb.DeleteFunctionConcurrencyCmd{
			Header: &fsmpb.Header{AccountId: c.account}, Name: "resv"}); err != nil {
			t.Fatal(err)
		}
		c.waitReplicas(t, func(a *Agent) bool { return !a.Metadata().View().Function(c.account, "resv").HasReservedConcurrency })
	})

	t.Run("limit holds with a node killed mid-run", func(t *testing.T) {
		// The victim runs part of the load: of the nodes that do not lead
		// (a leader change is not this test's subject), the one with the
		// most warm sandboxes of the function.
		leader := c.leader()
		held := c.sandboxes("unres", "$LATEST")
		victim := ""
		for _, a := range nodes {
			if id := a.NodeID(); a != leader && (victim == "" || held[id] > held[victim]) {
				victim = id
			}
		}
		done := make(chan *outcomes)
		go func() { done <- burst(t, nodes, "unres", "k", 200, 8, 300) }()
		clustertest.WaitFor(t, clusterWait, func() error {
			if n := c.agent(victim).local.inflight.Load(); n < 5 {
				return fmt.Errorf("%d invocations running on %s", n, victim)
			}
			return nil
		})
		c.crash(t, victim)
		killed := float64(time.Now().UnixNano()) / 1e9
		out := <-done
		var runs []run
		for _, r := range c.functionRuns(t, "unres", killed) {
			if r.token[0] == 'k' {
				runs = append(runs, r)
			}
		}
		overlap := maxOverlap(runs)
		t.Logf("killed %s mid-run; outcomes %s; overlap %d", victim, out, overlap)
		if overlap > limit {
			t.Fatalf("%d invocations ran at once with a node killed, account limit %d", overlap, limit)
		}
		if out.get("ok") == 0 || out.get(lambdaapi.ReasonConcurrentInvocationLimitExceeded) == 0 {
			t.Fatalf("outcomes: %s", out)
		}
	})
}

func total(o *outcomes) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.n {
		n += v
	}
	return n
}

// peakUsage polls GetAccountSettings on a until stop and returns the
// largest cluster-wide concurrency it reported.
func (c *routingCluster) peakUsage(a *Agent, stop <-chan struct{}) int {
	peak := 0
	for {
		var s struct {
			AccountUsage struct{ ConcurrentExecutions *int }
		}
		if resp, err := httpClient.Get("http://" + a.HTTPAddr() + "/2016-08-19/account-settings"); err == nil {
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil && s.AccountUsage.ConcurrentExecutions != nil {
				peak = max(peak, *s.AccountUsage.ConcurrentExecutions)
			}
			resp.Body.Close()
		}
		select {
		case <-stop:
			return peak
		case <-time.After(100 * time.Millisecond):
		}
	}
}
