package async

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// viewer is the part of fsm.View the scheduler reads.
type viewer interface {
	Function(accountID, name string) *fsmpb.Function
}

// The scheduler holds the events this node owns, each as a task, in a
// heap ordered by when the task may next run. A dispatcher starts due
// tasks while worker slots are free, at most the function's reserved
// concurrency at once per function (a function without one shares the
// node's workers). An event thus waits under throttling instead of
// failing: it runs when a slot frees, and a throttle from admission
// elsewhere backs it off.
//
// A task is planned from the local replica, which may lag the cluster: a
// node that restarted replays its log only as it learns the commit index
// again, and a node taking over a dead owner's events may not yet have
// applied that owner's last outcomes. Planned from such a replica, an
// event already delivered looks pending. So no task starts before the
// replica has been synced (a read index, Replica.Sync) by a sync that
// began after the task was planned; the attempt then reads the record
// afresh and drops an event whose outcome another owner committed. One
// sync serves every task planned before it began, so the cost is a read
// index per dispatch round, not per event.

type taskState uint8

const (
	taskQueued   taskState = iota // in the heap
	taskWaiting                   // due, but its function is at its concurrency
	taskRunning                   // an attempt is in flight
	taskSettling                  // finished; its outcome is being committed
)

type task struct {
	id       string
	fnKey    string // account/function: the per-function concurrency key
	function string // metrics label
	accepted time.Time
	due      time.Time
	state    taskState
	heapIdx  int
	// modify is the ModifyIndex of the record last planned from.
	modify uint64
	// gen is the sync generation the task was planned in: it may start
	// once a sync of a later generation has completed.
	gen uint64

	// Local delivery state, not replicated: throttles and system errors
	// are retried from here; function-error attempts are also committed.
	attempts    int32 // function-error attempts known (committed or on their way)
	invokeCount int32 // approximate invoke count known
	backoffs    int   // consecutive throttles and system errors
	last        *result
	// final is set once the event is decided (success or failure): only
	// its hand-off to targets and its outcome remain to be done.
	final *final
}

type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.heapIdx = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.heapIdx = -1
	return t
}

type fnSlots struct {
	running int
	waiting []*task
}

type scheduler struct {
	q       *Queue
	mu      sync.Mutex
	tasks   map[string]*task
	due     taskHeap
	fns     map[string]*fnSlots
	wake    chan struct{}
	slots   chan struct{}
	workers sync.WaitGroup
	stopped chan struct{} // closed when run returns; no worker starts after

	// Sync generations (see above): gen is the current one, synced the
	// generation of the last completed sync, syncing is set while one is
	// in flight.
	gen, synced uint64
	syncing     bool
}

func newScheduler(q *Queue) *scheduler {
	return &scheduler{q: q, tasks: map[string]*task{}, fns: map[string]*fnSlots{},
		wake: make(chan struct{}, 1), slots: make(chan struct{}, q.cfg.Workers), stopped: make(chan struct{})}
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dueFor is when a (re)planned event may run: at once, or after the
// function-error delay following its last committed attempt.
func (s *scheduler) dueFor(ev *fsmpb.AsyncEvent) time.Time {
	if ev.Attempts == 0 || ev.LastAttemptUnixNano == 0 {
		return time.Now()
	}
	return time.Unix(0, ev.LastAttemptUnixNano).Add(s.q.retryDelay(ev.Attempts))
}

// observe plans ev from the replicated state: a pending event this node
// owns gets a task; an event that is gone, dead or owned elsewhere loses
// its task unless an attempt is in flight (the attempt re-checks).
func (s *scheduler) observe(ev *fsmpb.AsyncEvent, owned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[ev.Id]
	if ev.State != fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING || !owned {
		if t != nil && (t.state == taskQueued || t.state == taskWaiting) {
			s.removeLocked(t)
		}
		return
	}
	if t == nil {
		t = &task{id: ev.Id, fnKey: ev.AccountId + "/" + ev.FunctionName, function: ev.FunctionName,
			accepted: time.Unix(0, ev.AcceptedUnixNano), due: s.dueFor(ev), modify: ev.ModifyIndex,
			attempts: ev.Attempts, invokeCount: ev.InvokeCount, heapIdx: -1, gen: s.gen}
		s.tasks[ev.Id] = t
		heap.Push(&s.due, t)
		s.signal()
		return
	}
	if ev.ModifyIndex <= t.modify || t.state == taskRunning || t.state == taskSettling {
		// A worker owns the task's fields while it runs; it reads the
		// record afresh itself.
		return
	}
	t.modify = ev.ModifyIndex
	t.attempts = max(t.attempts, ev.Attempts)
	t.invokeCount = max(t.invokeCount, ev.InvokeCount)
	if t.state == taskQueued {
		if at := s.dueFor(ev); at.After(t.due) {
			t.due = at
			heap.Fix(&s.due, t.heapIdx)
		}
	}
}

func (s *scheduler) removeLocked(t *task) {
	switch t.state {
	case taskQueued:
		if t.heapIdx >= 0 {
			heap.Remove(&s.due, t.heapIdx)
		}
	case taskWaiting:
		if fs := s.fns[t.fnKey]; fs != nil {
			for i, w := range fs.waiting {
				if w == t {
					fs.waiting = append(fs.waiting[:i], fs.waiting[i+1:]...)
					break
				}
			}
		}
	}
	delete(s.tasks, t.id)
}

// limit is how many attempts of a function may run at once on this node:
// its reserved concurrency (at least one, so that an always throttled
// function still reaches admission and backs off), or the node's workers.
func (s *scheduler) limit(v viewer, fnKey, function string) int {
	if fn := v.Function(accountOf(fnKey), function); fn != nil && fn.HasReservedConcurrency {
		return max(int(fn.ReservedConcurrency), 1)
	}
	return s.q.cfg.Workers
}

func (s *scheduler) run() {
	defer close(s.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var start, unsynced []*task
		v := s.q.deps.Replica.View()
		limits := map[string]int{}
	dispatch:
		for s.due.Len() > 0 && !s.due[0].due.After(now) {
			if s.due[0].gen >= s.synced {
				// Planned since the last sync began: wait for the next.
				unsynced = append(unsynced, heap.Pop(&s.due).(*task))
				continue
			}
			select {
			case s.slots <- struct{}{}:
			default:
				break dispatch // every worker is busy; a finishing one wakes us
			}
			t := heap.Pop(&s.due).(*task)
			lim, ok := limits[t.fnKey]
			if !ok {
				lim = s.limit(v, t.fnKey, t.function)
				limits[t.fnKey] = lim
			}
			fs := s.fnSlotsLocked(t.fnKey)
			if fs.running >= lim {
				<-s.slots
				t.state = taskWaiting
				fs.waiting = append(fs.waiting, t)
				continue
			}
			fs.running++
			t.state = taskRunning
			start = append(start, t)
		}
		for _, t := range unsynced {
			heap.Push(&s.due, t)
		}
		if len(unsynced) > 0 && !s.syncing {
			s.syncing = true
			s.gen++
			gen := s.gen
			s.q.goRun(func() { s.syncReplica(gen) })
		}
		next := time.Hour
		if s.due.Len() > 0 && len(s.slots) < cap(s.slots) && len(unsynced) == 0 {
			// (Unsynced tasks wait for the sync, which wakes us.)
			next = max(time.Until(s.due[0].due), time.Millisecond)
		}
		s.mu.Unlock()
		for _, t := range start {
			s.workers.Add(1)
			go s.work(t)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.q.stopping:
			return
		}
	}
}

// syncRecheck bounds the wait between failed syncs (no leader, leader
// unreachable): tasks wait meanwhile, as their outcomes could not be
// committed anyway.
const syncRecheck = 2 * time.Second

// syncReplica brings the replica up to date for every task planned in a
// generation before gen, retrying until it succeeds or the queue closes.
func (s *scheduler) syncReplica(gen uint64) {
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(s.q.ctx, s.q.cfg.AcceptTimeout)
		err := s.q.deps.Replica.Sync(ctx)
		cancel()
		if err == nil || s.q.ctx.Err() != nil {
			s.mu.Lock()
			if err == nil {
				s.synced = max(s.synced, gen)
			}
			s.syncing = false
			s.mu.Unlock()
			s.signal()
			return
		}
		s.q.log.Debug("replica not synced before delivery; will retry", "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.q.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, syncRecheck)
	}
}

func accountOf(fnKey string) string {
	acct, _, _ := strings.Cut(fnKey, "/")
	return acct
}

func (s *scheduler) fnSlotsLocked(key string) *fnSlots {
	fs := s.fns[key]
	if fs == nil {
		fs = &fnSlots{}
		s.fns[key] = fs
	}
	return fs
}

// work runs one attempt and applies the decision it returns.
func (s *scheduler) work(t *task) {
	defer s.workers.Done()
	d := s.q.attempt(s.q.ctx, t)
	s.mu.Lock()
	<-s.slots
	fs := s.fnSlotsLocked(t.fnKey)
	fs.running--
	if len(fs.waiting) > 0 {
		w := fs.waiting[0]
		fs.waiting = fs.waiting[1:]
		w.state = taskQueued
		heap.Push(&s.due, w)
	}
	if fs.running == 0 && len(fs.waiting) == 0 {
		delete(s.fns, t.fnKey)
	}
	switch d.kind {
	case decideRetry:
		t.state = taskQueued
		t.due = d.at
		heap.Push(&s.due, t)
	case decideSettling:
		t.state = taskSettling
	case decideForget:
		delete(s.tasks, t.id)
	}
	s.mu.Unlock()
	s.signal()
}

// settled forgets a task whose final outcome committed (or could not).
func (s *scheduler) settled(id string) {
	s.mu.Lock()
	if t := s.tasks[id]; t != nil && t.state == taskSettling {
		delete(s.tasks, id)
	}
	s.mu.Unlock()
}

func (s *scheduler) waitWorkers() { s.workers.Wait() }

type depthStat struct {
	count  int
	oldest time.Time
}

// depth reports the owned queue per function, keyed "account/function".
func (s *scheduler) depth() map[string]depthStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]depthStat{}
	for _, t := range s.tasks {
		d := out[t.fnKey]
		d.count++
		if d.oldest.IsZero() || t.accepted.Before(d.oldest) {
			d.oldest = t.accepted
		}
		out[t.fnKey] = d
	}
	return out
}
