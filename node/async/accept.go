package async

import (
	"context"
	"fmt"
	"sync"

	"github.com/stokehq/stoke/proto/fsmpb"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// acceptor group-commits accepted events. Events queue up while earlier
// batches are in flight (at most MaxInflightBatches); each batch then
// costs one payload-log fsync on every holder and one Raft entry, however
// many events it carries. With no load a batch is one event and nothing
// waits.
type acceptor struct {
	q     *Queue
	mu    sync.Mutex
	queue []*pendingEvent
	wake  chan struct{}
	slots chan struct{}
}

type pendingEvent struct {
	ev   *fsmpb.AsyncEvent
	p    *rpcpb.EventPayload
	done chan error
}

func newAcceptor(q *Queue) *acceptor {
	return &acceptor{q: q, wake: make(chan struct{}, 1), slots: make(chan struct{}, q.cfg.MaxInflightBatches)}
}

// submit queues one event and waits for its batch to commit.
func (a *acceptor) submit(ctx context.Context, ev *fsmpb.AsyncEvent, p *rpcpb.EventPayload) error {
	pe := &pendingEvent{ev: ev, p: p, done: make(chan error, 1)}
	a.mu.Lock()
	a.queue = append(a.queue, pe)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-pe.done:
		return err
	case <-ctx.Done():
		// The batch may still commit: the event would then be delivered
		// although its caller saw an error, which at-least-once allows.
		return ctx.Err()
	case <-a.q.ctx.Done():
		return ErrClosed
	}
}

// take removes the next batch from the queue.
func (a *acceptor) take() []*pendingEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, size := 0, 0
	for n < len(a.queue) && n < a.q.cfg.MaxBatchEvents {
		sz := len(a.queue[n].p.Payload) + len(a.queue[n].p.ClientContext)
		if n > 0 && size+sz > a.q.cfg.MaxBatchBytes {
			break
		}
		size += sz
		n++
	}
	batch := a.queue[:n:n]
	a.queue = a.queue[n:]
	if len(a.queue) == 0 {
		a.queue = nil
	}
	return batch
}

func (a *acceptor) run() {
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		for _, pe := range a.take() {
			pe.done <- ErrClosed
		}
	}()
	for {
		select {
		case <-a.wake:
		case <-a.q.ctx.Done():
			return
		}
		for {
			select {
			case a.slots <- struct{}{}:
			case <-a.q.ctx.Done():
				return
			}
			batch := a.take()
			if len(batch) == 0 {
				<-a.slots
				break
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				a.commit(batch)
				<-a.slots
			}()
		}
	}
}

// commit stores a batch's payloads on the holders, then commits the
// records in one Raft entry, then answers every event of the batch.
func (a *acceptor) commit(batch []*pendingEvent) {
	q := a.q
	ctx, cancel := context.WithTimeout(q.ctx, q.cfg.AcceptTimeout)
	defer cancel()
	ps := make([]*rpcpb.EventPayload, len(batch))
	for i, pe := range batch {
		ps[i] = pe.p
	}
	err := func() error {
		holders, err := q.replicate(ctx, ps)
		if err != nil {
			return err
		}
		cmd := &fsmpb.AsyncEnqueueCmd{Header: &fsmpb.Header{}}
		for _, pe := range batch {
			pe.ev.Holders = holders
			cmd.Events = append(cmd.Events, pe.ev)
		}
		if _, err := q.deps.Replica.Apply(ctx, cmd); err != nil {
			// The payloads stay until the sweep finds no record for them:
			// if the outcome was unknown the entry may yet have committed.
			return fmt.Errorf("%w: commit: %v", ErrNotStored, err)
		}
		return nil
	}()
	if err != nil {
		q.log.Warn("events not accepted", "events", len(batch), "err", err)
	} else {
		q.m.batchSize.Observe(float64(len(batch)))
	}
	for _, pe := range batch {
		if err == nil {
			q.m.accepted.WithLabelValues(pe.ev.AccountId, pe.ev.FunctionName).Inc()
		}
		pe.done <- err
	}
}
