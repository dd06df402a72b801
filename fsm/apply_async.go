package fsm

import (
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// Asynchronous invocation's replicated state: event-invoke configurations
// and the queue's event records (proto/fsmpb/async.proto). Payloads are not
// here: an event names the nodes whose payload logs hold them.

// Limits of an event-invoke configuration, as Lambda sets them.
const (
	MaxRetryAttempts   = 2
	MinEventAgeSeconds = 60
	MaxEventAgeSeconds = 21600
	maxDestinationARN  = 350
	// maxAsyncErrorMessage bounds the error text an event record keeps.
	maxAsyncErrorMessage = 1024
)

// Async event indexes (tableAsyncEvents).
const (
	indexHolder   = "holder"   // every node listed in Holders
	indexFnState  = "fn_state" // AccountId, FunctionName, State
	indexState    = "state"    // State
	indexModified = "modified" // ModifyIndex
)

func eventConfigsSchema(functionKey memdb.Indexer) *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableEventConfigs, Indexes: map[string]*memdb.IndexSchema{
		indexID: {Name: indexID, Unique: true, Indexer: compound(
			str("AccountId"), str("FunctionName"), str("Qualifier"))},
		indexFunction: {Name: indexFunction, Indexer: functionKey},
	}}
}

func asyncEventsSchema() *memdb.TableSchema {
	state := &memdb.IntFieldIndex{Field: "State"}
	return &memdb.TableSchema{Name: tableAsyncEvents, Indexes: map[string]*memdb.IndexSchema{
		indexID:       {Name: indexID, Unique: true, Indexer: str("Id")},
		indexHolder:   {Name: indexHolder, Indexer: &memdb.StringSliceFieldIndex{Field: "Holders"}},
		indexFnState:  {Name: indexFnState, Indexer: compound(str("AccountId"), str("FunctionName"), state)},
		indexState:    {Name: indexState, Indexer: state},
		indexModified: {Name: indexModified, Indexer: &memdb.UintFieldIndex{Field: "ModifyIndex"}},
	}}
}

// checkQualifier refuses a qualifier that names no version or alias of fn.
func (a *applier) checkQualifier(fn *fsmpb.Function, qualifier string) error {
	switch {
	case qualifier == VersionLatest:
		return nil
	case isVersion(qualifier):
		n, _ := strconv.ParseInt(qualifier, 10, 64)
		if raw, _ := a.txn.First(tableVersions, indexID, fn.AccountId, fn.Name, n); raw != nil {
			return nil
		}
	default:
		if raw, _ := a.txn.First(tableAliases, indexID, fn.AccountId, fn.Name, qualifier); raw != nil {
			return nil
		}
	}
	return errorf(CodeNotFound, "Function not found: %s:%s", fn.Name, qualifier)
}

func isVersion(q string) bool {
	if q == "" || len(q) > 20 {
		return false
	}
	for _, r := range q {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func checkEventInvokeConfig(c *fsmpb.EventInvokeConfig) error {
	switch {
	case c.HasMaximumRetryAttempts && (c.MaximumRetryAttempts < 0 || c.MaximumRetryAttempts > MaxRetryAttempts):
		return errorf(CodeInvalid, "MaximumRetryAttempts %d is outside [0, %d]", c.MaximumRetryAttempts, MaxRetryAttempts)
	case c.HasMaximumEventAgeS && (c.MaximumEventAgeS < MinEventAgeSeconds || c.MaximumEventAgeS > MaxEventAgeSeconds):
		return errorf(CodeInvalid, "MaximumEventAgeInSeconds %d is outside [%d, %d]", c.MaximumEventAgeS, MinEventAgeSeconds, MaxEventAgeSeconds)
	case len(c.GetDestinations().GetOnSuccess()) > maxDestinationARN || len(c.GetDestinations().GetOnFailure()) > maxDestinationARN:
		return errorf(CodeInvalid, "destination ARNs are at most %d characters", maxDestinationARN)
	}
	return nil
}

func (a *applier) putEventInvokeConfig(c *fsmpb.PutEventInvokeConfigCmd) error {
	if c.Config == nil {
		return errorf(CodeInvalid, "event invoke configuration is required")
	}
	acctID := c.Header.AccountId
	fn, err := a.function(acctID, c.Config.FunctionName)
	if err != nil {
		return err
	}
	qualifier := c.Config.Qualifier
	if qualifier == "" {
		qualifier = VersionLatest
	}
	if err := a.checkQualifier(fn, qualifier); err != nil {
		return err
	}
	next := proto.Clone(c.Config).(*fsmpb.EventInvokeConfig)
	if c.Update {
		raw, _ := a.txn.First(tableEventConfigs, indexID, acctID, fn.Name, qualifier)
		if raw == nil {
			return errorf(CodeNotFound, "The function %s:%s doesn't have an EventInvokeConfig", fn.Name, qualifier)
		}
		next = proto.Clone(raw.(*fsmpb.EventInvokeConfig)).(*fsmpb.EventInvokeConfig)
		if err := mergeEventInvokeConfig(next, c.Config, c.Fields); err != nil {
			return err
		}
	}
	next.AccountId, next.FunctionName, next.Qualifier = acctID, fn.Name, qualifier
	next.LastModifiedUnixNano = a.now()
	if err := checkEventInvokeConfig(next); err != nil {
		return err
	}
	return a.insert(tableEventConfigs, next)
}

func mergeEventInvokeConfig(dst, src *fsmpb.EventInvokeConfig, fields []string) error {
	if dst.Destinations == nil {
		dst.Destinations = &fsmpb.DestinationConfig{}
	}
	for _, f := range fields {
		switch f {
		case "maximum_retry_attempts":
			dst.HasMaximumRetryAttempts, dst.MaximumRetryAttempts = src.HasMaximumRetryAttempts, src.MaximumRetryAttempts
		case "maximum_event_age_s":
			dst.HasMaximumEventAgeS, dst.MaximumEventAgeS = src.HasMaximumEventAgeS, src.MaximumEventAgeS
		case "on_success":
			dst.Destinations.OnSuccess = src.GetDestinations().GetOnSuccess()
		case "on_failure":
			dst.Destinations.OnFailure = src.GetDestinations().GetOnFailure()
		default:
			return errorf(CodeInvalid, "event invoke configuration field %q cannot be updated", f)
		}
	}
	return nil
}

func (a *applier) deleteEventInvokeConfig(c *fsmpb.DeleteEventInvokeConfigCmd) error {
	acctID := c.Header.AccountId
	if _, err := a.function(acctID, c.FunctionName); err != nil {
		return err
	}
	qualifier := c.Qualifier
	if qualifier == "" {
		qualifier = VersionLatest
	}
	raw, _ := a.txn.First(tableEventConfigs, indexID, acctID, c.FunctionName, qualifier)
	if raw == nil {
		return errorf(CodeNotFound, "The function %s:%s doesn't have an EventInvokeConfig", c.FunctionName, qualifier)
	}
	if err := a.txn.Delete(tableEventConfigs, raw); err != nil {
		return errorf(CodeInvalid, "delete event invoke config: %v", err)
	}
	return nil
}

func (a *applier) asyncEvent(id string) *fsmpb.AsyncEvent {
	raw, _ := a.txn.First(tableAsyncEvents, indexID, id)
	if raw == nil {
		return nil
	}
	return raw.(*fsmpb.AsyncEvent)
}

// asyncEnqueue inserts every well-formed event of the batch whose id is
// new. Malformed items are skipped rather than failing the batch: the
// proposer checks them, and one bad item must not cost the others.
func (a *applier) asyncEnqueue(c *fsmpb.AsyncEnqueueCmd) error {
	for _, in := range c.Events {
		if in.Id == "" || in.AccountId == "" || in.FunctionName == "" || !validHolders(in.Holders) || a.asyncEvent(in.Id) != nil {
			continue
		}
		if err := a.insert(tableAsyncEvents, a.freshEvent(in)); err != nil {
			return err
		}
	}
	return nil
}

// validHolders reports whether hs can be an event's holder list: at least
// one node and no empty id (the holder index refuses an empty one, which
// would fail the whole command instead of skipping the item).
func validHolders(hs []string) bool {
	return len(hs) > 0 && !slices.Contains(hs, "")
}

// freshEvent is a pending event accepted now, with no attempts, carrying
// what identifies in and where its payload is.
func (a *applier) freshEvent(in *fsmpb.AsyncEvent) *fsmpb.AsyncEvent {
	return &fsmpb.AsyncEvent{
		Id:               in.Id,
		AccountId:        in.AccountId,
		FunctionName:     in.FunctionName,
		Qualifier:        in.Qualifier,
		Version:          in.Version,
		Holders:          append([]string(nil), in.Holders...),
		AcceptedUnixNano: a.now(),
		PayloadBytes:     in.PayloadBytes,
		State:            fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING,
		ModifyIndex:      a.index,
		InvokedArn:       in.InvokedArn,
	}
}

// truncateMessage bounds s to maxAsyncErrorMessage bytes without splitting
// a UTF-8 sequence: a proto3 string holding invalid UTF-8 cannot be
// marshalled, and one such record would fail every later snapshot.
func truncateMessage(s string) string {
	if len(s) <= maxAsyncErrorMessage {
		return s
	}
	n := maxAsyncErrorMessage
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (a *applier) asyncUpdate(c *fsmpb.AsyncUpdateCmd) error {
	const pending, dead = fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD
	for _, u := range c.Updates {
		cur := a.asyncEvent(u.Id)
		if cur == nil {
			continue
		}
		if u.Action == fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE {
			if cur.State == pending {
				if err := a.txn.Delete(tableAsyncEvents, cur); err != nil {
					return errorf(CodeInvalid, "delete async event: %v", err)
				}
			}
			continue
		}
		ev := proto.Clone(cur).(*fsmpb.AsyncEvent)
		switch u.Action {
		case fsmpb.AsyncAction_ASYNC_ACTION_RETRY:
			if cur.State != pending || u.Attempts <= cur.Attempts {
				continue
			}
			ev.Attempts = u.Attempts
			ev.LastAttemptUnixNano = a.now()
		case fsmpb.AsyncAction_ASYNC_ACTION_DEAD_LETTER:
			if cur.State != pending {
				continue
			}
			ev.State = dead
			ev.Attempts = max(ev.Attempts, u.Attempts)
			ev.Condition = u.Condition
			ev.DeadUnixNano = a.now()
		case fsmpb.AsyncAction_ASYNC_ACTION_SET_HOLDERS:
			if !validHolders(u.Holders) {
				continue
			}
			ev.Holders = append([]string(nil), u.Holders...)
		default:
			continue
		}
		if u.Action != fsmpb.AsyncAction_ASYNC_ACTION_SET_HOLDERS {
			ev.InvokeCount = max(ev.InvokeCount, u.InvokeCount)
			ev.ErrorType, ev.ErrorMessage, ev.StatusCode = u.ErrorType, truncateMessage(u.ErrorMessage), u.StatusCode
		}
		ev.ModifyIndex = a.index
		if err := a.insert(tableAsyncEvents, ev); err != nil {
			return err
		}
	}
	return nil
}

// deadEvents returns the dead-lettered events a redrive or purge names:
// the listed ids that are dead and belong to the function, or every dead
// event of the function when ids is empty.
func (a *applier) deadEvents(accountID, function string, ids []string) []*fsmpb.AsyncEvent {
	const dead = fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD
	if len(ids) == 0 {
		return all[fsmpb.AsyncEvent](&View{txn: a.txn}, tableAsyncEvents, indexFnState, accountID, function, dead)
	}
	var out []*fsmpb.AsyncEvent
	for _, id := range ids {
		if ev := a.asyncEvent(id); ev != nil && ev.State == dead && ev.AccountId == accountID && ev.FunctionName == function {
			out = append(out, ev)
		}
	}
	return out
}

func (a *applier) asyncRedrive(c *fsmpb.AsyncRedriveCmd) error {
	if c.Header.AccountId == "" || c.FunctionName == "" {
		return errorf(CodeInvalid, "redrive needs an account and a function")
	}
	for _, cur := range a.deadEvents(c.Header.AccountId, c.FunctionName, c.Ids) {
		if err := a.insert(tableAsyncEvents, a.freshEvent(cur)); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) asyncPurge(c *fsmpb.AsyncPurgeCmd) error {
	var victims []*fsmpb.AsyncEvent
	switch {
	case c.Header.AccountId != "" && c.FunctionName != "":
		victims = a.deadEvents(c.Header.AccountId, c.FunctionName, c.Ids)
	case c.Header.AccountId == "" && c.DeadBeforeUnixNano > 0:
		victims = all[fsmpb.AsyncEvent](&View{txn: a.txn}, tableAsyncEvents, indexState, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD)
	default:
		return errorf(CodeInvalid, "purge needs an account and a function, or (cluster-level) a cutoff time")
	}
	for _, ev := range victims {
		if c.DeadBeforeUnixNano > 0 && ev.DeadUnixNano >= c.DeadBeforeUnixNano {
			continue
		}
		if err := a.txn.Delete(tableAsyncEvents, ev); err != nil {
			return errorf(CodeInvalid, "delete async event: %v", err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- reads

// EventInvokeConfig returns a qualifier's configuration ("$LATEST" for the
// unqualified function), or nil.
func (v *View) EventInvokeConfig(accountID, function, qualifier string) *fsmpb.EventInvokeConfig {
	return first[fsmpb.EventInvokeConfig](v, tableEventConfigs, accountID, function, qualifier)
}

// EventInvokeConfigs returns a function's configurations ordered by qualifier.
func (v *View) EventInvokeConfigs(accountID, function string) []*fsmpb.EventInvokeConfig {
	out := all[fsmpb.EventInvokeConfig](v, tableEventConfigs, indexFunction, accountID, function)
	sort.Slice(out, func(i, j int) bool { return out[i].Qualifier < out[j].Qualifier })
	return out
}

// AsyncEvent returns a queued or dead-lettered event, or nil.
func (v *View) AsyncEvent(id string) *fsmpb.AsyncEvent {
	return first[fsmpb.AsyncEvent](v, tableAsyncEvents, id)
}

// EachAsyncEventHeldBy calls fn for every event whose payload the node
// holds, until fn returns false.
func (v *View) EachAsyncEventHeldBy(node string, fn func(*fsmpb.AsyncEvent) bool) {
	each(v, tableAsyncEvents, indexHolder, fn, node)
}

// EachAsyncEventModifiedAfter calls fn, in log order, for every event
// created or changed at a log index greater than index, until fn returns
// false. Deleted events are not reported.
func (v *View) EachAsyncEventModifiedAfter(index uint64, fn func(*fsmpb.AsyncEvent) bool) {
	it, err := v.txn.LowerBound(tableAsyncEvents, indexModified, index+1)
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if !fn(raw.(*fsmpb.AsyncEvent)) {
			return
		}
	}
}

// DeadLetters returns up to limit dead-lettered events of a function with
// ids after marker, in id order. limit <= 0 means no limit.
func (v *View) DeadLetters(accountID, function, marker string, limit int) []*fsmpb.AsyncEvent {
	evs := all[fsmpb.AsyncEvent](v, tableAsyncEvents, indexFnState, accountID, function, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD)
	out := evs[:0]
	for _, ev := range evs {
		if ev.Id > marker {
			out = append(out, ev)
		}
	}
	sortByID(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// EachPendingAsyncEvent calls fn for every queued event, until fn
// returns false.
func (v *View) EachPendingAsyncEvent(fn func(*fsmpb.AsyncEvent) bool) {
	each(v, tableAsyncEvents, indexState, fn, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING)
}

// EachDeadLetter calls fn for every dead-lettered event of every
// function, until fn returns false.
func (v *View) EachDeadLetter(fn func(*fsmpb.AsyncEvent) bool) {
	each(v, tableAsyncEvents, indexState, fn, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD)
}

// AsyncEventCounts returns how many events are queued and dead-lettered
// cluster-wide. It walks the table: for tests and occasional reports.
func (v *View) AsyncEventCounts() (pending, dead int) {
	each(v, tableAsyncEvents, indexState, func(*fsmpb.AsyncEvent) bool { pending++; return true }, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING)
	each(v, tableAsyncEvents, indexState, func(*fsmpb.AsyncEvent) bool { dead++; return true }, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD)
	return pending, dead
}

func each[T any](v *View, table, index string, fn func(*T) bool, args ...any) {
	it, err := v.txn.Get(table, index, args...)
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if !fn(raw.(*T)) {
			return
		}
	}
}

func sortByID(evs []*fsmpb.AsyncEvent) {
	sort.Slice(evs, func(i, j int) bool { return evs[i].Id < evs[j].Id })
}
