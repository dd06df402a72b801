package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/history"
)

// controlLoad is a stream of control-plane operations from several
// sequential clients over a few functions: creates, description updates,
// publishes, aliases, reads and (optionally) deletes, each description
// unique so a read names the write it saw. Every client is bounded in
// operations (MaxOps) and paced (Pace between calls).
type controlLoad struct {
	Clients   []*client.Control
	Functions []string
	// Deletes adds DeleteFunction to the mix.
	Deletes bool
	MaxOps  int
	Pace    time.Duration
	Seed    int64

	wg sync.WaitGroup
}

// aliasNames are the aliases the load creates; versions is how far alias
// targets and version reads reach.
var aliasNames = []string{"blue", "green", "live"}

const versionsProbed = 4

// Setup creates every function through the first client (recorded, so
// the checkers see the creates), retrying until each exists.
func (l *controlLoad) Setup(ctx context.Context) error {
	c := l.Clients[0]
	for _, fn := range l.Functions {
		for attempt := 0; ; attempt++ {
			op := c.CreateFunction(ctx, fn, fn+"-initial")
			if op.Outcome == history.OK || op.Error == history.ErrConflict {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("create %s: %s", fn, op.Error)
			}
		}
	}
	return nil
}

// Start runs every client in the background until ctx ends or it has
// issued MaxOps operations; Wait waits for them.
func (l *controlLoad) Start(ctx context.Context) {
	for i, c := range l.Clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.client(ctx, c, rand.New(rand.NewPCG(uint64(l.Seed), uint64(i))))
		}()
	}
}

func (l *controlLoad) Wait() { l.wg.Wait() }

// client issues one client's operations until ctx ends. An operation in
// flight when ctx ends runs to its answer or its own timeout: stopping the
// load must not turn answers into unknown outcomes.
func (l *controlLoad) client(stop context.Context, c *client.Control, rng *rand.Rand) {
	tick := time.NewTicker(l.Pace)
	defer tick.Stop()
	ctx := context.WithoutCancel(stop)
	for i := 0; i < l.MaxOps; i++ {
		select {
		case <-stop.Done():
			return
		case <-tick.C:
		}
		fn := l.Functions[rng.IntN(len(l.Functions))]
		desc := fmt.Sprintf("c%d-%d", c.ID(), i)
		switch r := rng.IntN(100); {
		case r < 5:
			c.CreateFunction(ctx, fn, desc)
		case r < 35:
			c.UpdateDescription(ctx, fn, desc)
		case r < 50:
			c.Publish(ctx, fn)
		case r < 58:
			c.CreateAlias(ctx, fn, aliasNames[rng.IntN(len(aliasNames))], strconv.Itoa(1+rng.IntN(versionsProbed)))
		case r < 63:
			c.GetAlias(ctx, fn, aliasNames[rng.IntN(len(aliasNames))])
		case r < 67 && l.Deletes:
			c.Delete(ctx, fn)
		case r < 75:
			c.Get(ctx, fn, strconv.Itoa(1+rng.IntN(versionsProbed)))
		default:
			c.Get(ctx, fn, "")
		}
	}
}
