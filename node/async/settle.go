package async

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// settler commits delivery outcomes (AsyncUpdateCmd), group-committed like
// acceptance: outcomes produced while a batch is in flight form the next
// one. A batch that fails is retried with the same request id (the FSM
// answers a retried command idempotently) until it commits or the queue
// closes; a delivered event is never delivered again by this node while
// its outcome is on its way.
type settler struct {
	q     *Queue
	mu    sync.Mutex
	queue []settleItem
	busy  bool // a batch is being committed
	wake  chan struct{}
}

type settleItem struct {
	u    *fsmpb.AsyncEventUpdate
	done func(error) // may be nil; called from the settler's goroutine
}

// maxSettleBatch bounds one AsyncUpdateCmd.
const maxSettleBatch = 2000

func newSettler(q *Queue) *settler {
	return &settler{q: q, wake: make(chan struct{}, 1)}
}

// settle queues an outcome; done (if not nil) learns whether it committed.
func (s *settler) settle(u *fsmpb.AsyncEventUpdate, done func(error)) {
	s.mu.Lock()
	s.queue = append(s.queue, settleItem{u: u, done: done})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *settler) take() []settleItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.queue), maxSettleBatch)
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.busy = n > 0
	return batch
}

// flush waits until every outcome queued before the call has been
// committed (or ctx ends). An empty settler returns at once.
func (s *settler) flush(ctx context.Context) {
	s.mu.Lock()
	idle := len(s.queue) == 0 && !s.busy
	s.mu.Unlock()
	if idle {
		return
	}
	done := make(chan struct{})
	// A marker naming no event: the FSM skips it, and its callback runs
	// once everything queued before it has committed.
	s.settle(&fsmpb.AsyncEventUpdate{}, func(error) { close(done) })
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *settler) run() {
	defer func() {
		for _, it := range s.take() {
			if it.done != nil {
				it.done(ErrClosed)
			}
		}
	}()
	for {
		select {
		case <-s.wake:
		case <-s.q.ctx.Done():
			return
		}
		for {
			batch := s.take()
			if len(batch) == 0 {
				break
			}
			err := s.commit(batch)
			for _, it := range batch {
				if it.done != nil {
					it.done(err)
				}
			}
			if errors.Is(err, ErrClosed) {
				return
			}
		}
	}
}

// commit applies one batch, retrying until it commits or the queue closes.
func (s *settler) commit(batch []settleItem) error {
	cmd := &fsmpb.AsyncUpdateCmd{Header: &fsmpb.Header{RequestId: newID()}}
	for _, it := range batch {
		cmd.Updates = append(cmd.Updates, it.u)
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.q.ctx, s.q.cfg.AcceptTimeout)
		_, err := s.q.deps.Replica.Apply(ctx, cmd)
		if err == nil {
			// Outcomes are acknowledged once the local replica shows them:
			// until then a pass over it would still see a finished event
			// pending and deliver it again.
			err = s.q.deps.Replica.Sync(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if s.q.ctx.Err() != nil {
			return ErrClosed
		}
		var refused *fsm.Error
		if errors.As(err, &refused) {
			// Deterministic: every retry would be refused the same way.
			s.q.log.Error("delivery outcomes refused by the state machine", "outcomes", len(batch), "err", err)
			return err
		}
		s.q.m.settleFailures.Inc()
		s.q.log.Warn("delivery outcomes not committed; retrying", "outcomes", len(batch), "attempt", attempt+1, "err", err)
		t := time.NewTimer(min(100*time.Millisecond<<min(attempt, 6), 5*time.Second))
		select {
		case <-t.C:
		case <-s.q.ctx.Done():
			t.Stop()
			return ErrClosed
		}
	}
}
