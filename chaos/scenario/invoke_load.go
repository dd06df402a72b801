package scenario

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
)

// invokeLoad is a stream of synchronous invocations of one function from
// several sequential clients, each call carrying a unique nonce the
// function must echo. Every client is bounded in calls (MaxOps) and paced
// (Pace between the starts of its calls; 0: back to back).
type invokeLoad struct {
	Clients  []invokeCaller
	Function string
	SleepMS  int
	MaxOps   int
	Pace     time.Duration
	Seed     int64

	wg sync.WaitGroup
}

// Start runs every client until ctx ends or it made MaxOps calls. A call
// in flight when ctx ends runs to its answer or its timeout.
func (l *invokeLoad) Start(stop context.Context) {
	ctx := context.WithoutCancel(stop)
	for i, c := range l.Clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var tick <-chan time.Time
			if l.Pace > 0 {
				t := time.NewTicker(l.Pace)
				defer t.Stop()
				tick = t.C
			}
			for n := 0; n < l.MaxOps; n++ {
				if tick != nil {
					select {
					case <-stop.Done():
						return
					case <-tick:
					}
				} else if stop.Err() != nil {
					return
				}
				c.Invoke(ctx, l.Function, "", fmt.Sprintf("s%d-c%d-%d", l.Seed, i, n), l.SleepMS)
			}
		}()
	}
}

func (l *invokeLoad) Wait() { l.wg.Wait() }

// invokersOver returns n recording data-plane clients, ids 0 to n-1,
// spread round-robin over nodes.
func (e *Env) invokersOver(nodes []*harness.Node, n int) []invokeCaller {
	out := make([]invokeCaller, n)
	for i := range out {
		out[i] = e.Invoker(i, nodes[i%len(nodes)])
	}
	return out
}

// Invoker returns a recording data-plane client bound to n, closed when
// the test ends.
func (e *Env) Invoker(id int, n *harness.Node) *client.Invoker {
	c := client.NewInvoker(e.Rec, client.InvokerConfig{Client: id, Node: n.ID, Endpoint: n.Endpoint(),
		Credentials: e.c.Credentials()})
	e.t.Cleanup(c.Close)
	return c
}
