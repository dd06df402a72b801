package fsm

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func eventCfg(qualifier string, retries, age int32, onFailure string) *fsmpb.EventInvokeConfig {
	return &fsmpb.EventInvokeConfig{FunctionName: "fn", Qualifier: qualifier,
		HasMaximumRetryAttempts: retries >= 0, MaximumRetryAttempts: max(retries, 0),
		HasMaximumEventAgeS: age > 0, MaximumEventAgeS: age,
		Destinations: &fsmpb.DestinationConfig{OnFailure: onFailure}}
}

func enqueue(ids ...string) *fsmpb.AsyncEnqueueCmd {
	c := &fsmpb.AsyncEnqueueCmd{Header: hdr("")}
	for _, id := range ids {
		c.Events = append(c.Events, &fsmpb.AsyncEvent{Id: id, AccountId: testAccount, FunctionName: "fn",
			Qualifier: VersionLatest, Version: VersionLatest, Holders: []string{"n1", "n2"}, PayloadBytes: 10})
	}
	return c
}

func update(us ...*fsmpb.AsyncEventUpdate) *fsmpb.AsyncUpdateCmd {
	return &fsmpb.AsyncUpdateCmd{Header: hdr(""), Updates: us}
}

func deadLetter(id string) *fsmpb.AsyncEventUpdate {
	return &fsmpb.AsyncEventUpdate{Id: id, Action: fsmpb.AsyncAction_ASYNC_ACTION_DEAD_LETTER, Attempts: 3, InvokeCount: 3,
		ErrorType: "Unhandled", ErrorMessage: "boom", StatusCode: 200, Condition: "RetriesExhausted"}
}

// asyncApplyCases are TestApplyCommands rows for the asynchronous
// invocation commands.
func asyncApplyCases() []applyCase {
	withFn := []Command{accountCmd(testAccount), createFn("fn", true)}
	withAlias := append(append([]Command{}, withFn...),
		&fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{FunctionName: "fn", Name: "live", FunctionVersion: "1"}})
	withCfg := append(append([]Command{}, withFn...),
		&fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 1, 120, "arn:dlq")})
	withEvents := append(append([]Command{}, withFn...), enqueue("e1", "e2"))
	withDead := append(append([]Command{}, withEvents...), update(deadLetter("e1"), deadLetter("e2")))
	const pending, dead = fsmpb.AsyncEventState_ASYNC_EVENT_STATE_PENDING, fsmpb.AsyncEventState_ASYNC_EVENT_STATE_DEAD

	return []applyCase{
		{name: "put config for $LATEST", setup: withFn,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 1, 120, "arn:dlq")},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				c := v.EventInvokeConfig(testAccount, "fn", VersionLatest)
				if c == nil || c.MaximumRetryAttempts != 1 || c.MaximumEventAgeS != 120 || c.Destinations.OnFailure != "arn:dlq" || c.LastModifiedUnixNano == 0 {
					t.Fatalf("config = %v", c)
				}
			}},
		{name: "put config for an alias and a version", setup: withAlias,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("live", 0, 0, "")},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if c := v.EventInvokeConfig(testAccount, "fn", "live"); c == nil || !c.HasMaximumRetryAttempts || c.HasMaximumEventAgeS {
					t.Fatalf("config = %v", c)
				}
				if n := len(v.EventInvokeConfigs(testAccount, "fn")); n != 1 {
					t.Fatalf("%d configs, want 1", n)
				}
			}},
		{name: "put config for a missing alias", setup: withFn,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("nope", 0, 0, "")}, want: CodeNotFound},
		{name: "put config for a missing version", setup: withFn,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("7", 0, 0, "")}, want: CodeNotFound},
		{name: "put config for a missing function", setup: []Command{accountCmd(testAccount)},
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 0, 0, "")}, want: CodeNotFound},
		{name: "put config with too many retries", setup: withFn,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 3, 0, "")}, want: CodeInvalid},
		{name: "put config with too short an age", setup: withFn,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 0, 59, "")}, want: CodeInvalid},
		{name: "put replaces every setting", setup: withCfg,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", -1, 300, "")},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				c := v.EventInvokeConfig(testAccount, "fn", VersionLatest)
				if c.HasMaximumRetryAttempts || c.MaximumEventAgeS != 300 || c.Destinations.OnFailure != "" {
					t.Fatalf("config = %v", c)
				}
			}},
		{name: "update merges the named fields", setup: withCfg,
			cmd: &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Update: true, Fields: []string{"maximum_retry_attempts", "on_success"},
				Config: &fsmpb.EventInvokeConfig{FunctionName: "fn", HasMaximumRetryAttempts: true, MaximumRetryAttempts: 2,
					Destinations: &fsmpb.DestinationConfig{OnSuccess: "arn:ok", OnFailure: "ignored"}}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				c := v.EventInvokeConfig(testAccount, "fn", VersionLatest)
				if c.MaximumRetryAttempts != 2 || c.MaximumEventAgeS != 120 || c.Destinations.OnSuccess != "arn:ok" || c.Destinations.OnFailure != "arn:dlq" {
					t.Fatalf("config = %v", c)
				}
			}},
		{name: "update without a config", setup: withFn,
			cmd:  &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Update: true, Fields: []string{"on_success"}, Config: eventCfg("", 0, 0, "")},
			want: CodeNotFound},
		{name: "update of an unknown field", setup: withCfg,
			cmd:  &fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Update: true, Fields: []string{"account_id"}, Config: eventCfg("", 0, 0, "")},
			want: CodeInvalid},
		{name: "delete config", setup: withCfg,
			cmd: &fsmpb.DeleteEventInvokeConfigCmd{Header: hdr(testAccount), FunctionName: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.EventInvokeConfig(testAccount, "fn", VersionLatest) != nil {
					t.Fatal("config survived its deletion")
				}
			}},
		{name: "delete missing config", setup: withFn,
			cmd: &fsmpb.DeleteEventInvokeConfigCmd{Header: hdr(testAccount), FunctionName: "fn", Qualifier: "1"}, want: CodeNotFound},
		{name: "deleting the function deletes its configs", setup: withCfg,
			cmd: &fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if len(v.EventInvokeConfigs(testAccount, "fn")) != 0 {
					t.Fatal("configs outlived their function")
				}
			}},
		{name: "deleting an alias deletes its config only", setup: append(append([]Command{}, withAlias...),
			&fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("live", 1, 0, "")},
			&fsmpb.PutEventInvokeConfigCmd{Header: hdr(testAccount), Config: eventCfg("", 1, 0, "")}),
			cmd: &fsmpb.DeleteAliasCmd{Header: hdr(testAccount), FunctionName: "fn", Name: "live"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.EventInvokeConfig(testAccount, "fn", "live") != nil || v.EventInvokeConfig(testAccount, "fn", VersionLatest) == nil {
					t.Fatalf("configs left: %v", v.EventInvokeConfigs(testAccount, "fn"))
				}
			}},
		{name: "enqueue skips an event with an empty holder, not the batch", setup: withFn,
			cmd: func() Command {
				c := enqueue("e1", "e2")
				c.Events[0].Holders = []string{"n1", ""}
				return c
			}(),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.AsyncEvent("e1") != nil || v.AsyncEvent("e2") == nil {
					t.Fatalf("e1 = %v, e2 = %v; want only e2", v.AsyncEvent("e1"), v.AsyncEvent("e2"))
				}
			}},
		{name: "an empty holder in set-holders skips that update, not the batch", setup: withEvents,
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_SET_HOLDERS, Holders: []string{""}},
				&fsmpb.AsyncEventUpdate{Id: "e2", Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if ev := v.AsyncEvent("e1"); ev == nil || len(ev.Holders) != 2 || v.AsyncEvent("e2") != nil {
					t.Fatalf("e1 = %v, e2 = %v; want e1 unchanged and e2 completed", ev, v.AsyncEvent("e2"))
				}
			}},
		{name: "enqueue a batch", setup: withFn, cmd: enqueue("e1", "e2", "e3"),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				ev := v.AsyncEvent("e2")
				if ev == nil || ev.State != pending || ev.AcceptedUnixNano == 0 || ev.ModifyIndex == 0 || len(ev.Holders) != 2 {
					t.Fatalf("event = %v", ev)
				}
				held := 0
				v.EachAsyncEventHeldBy("n2", func(*fsmpb.AsyncEvent) bool { held++; return true })
				if p, d := v.AsyncEventCounts(); p != 3 || d != 0 || held != 3 {
					t.Fatalf("pending %d, dead %d, held by n2 %d", p, d, held)
				}
			}},
		{name: "enqueue skips known ids and malformed items", setup: withEvents,
			cmd: &fsmpb.AsyncEnqueueCmd{Header: hdr(""), Events: []*fsmpb.AsyncEvent{
				{Id: "e1", AccountId: testAccount, FunctionName: "other", Holders: []string{"n9"}},
				{Id: "e9", AccountId: testAccount, FunctionName: "fn"}, // no holders
				{Id: "e3", AccountId: testAccount, FunctionName: "fn", Holders: []string{"n3"}},
			}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.AsyncEvent("e1").FunctionName != "fn" || v.AsyncEvent("e9") != nil || v.AsyncEvent("e3") == nil {
					t.Fatal("enqueue did not skip the duplicate and the malformed item")
				}
			}},
		{name: "complete removes the event", setup: withEvents,
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE},
				&fsmpb.AsyncEventUpdate{Id: "ghost", Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.AsyncEvent("e1") != nil || v.AsyncEvent("e2") == nil {
					t.Fatal("complete removed the wrong events")
				}
			}},
		{name: "retry records attempts and only grows them", setup: append(append([]Command{}, withEvents...),
			update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_RETRY, Attempts: 2, InvokeCount: 2, ErrorType: "Unhandled"})),
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_RETRY, Attempts: 1, ErrorType: "stale"}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				ev := v.AsyncEvent("e1")
				if ev.Attempts != 2 || ev.ErrorType != "Unhandled" || ev.LastAttemptUnixNano == 0 || ev.InvokeCount != 2 {
					t.Fatalf("event = %v", ev)
				}
			}},
		{name: "dead letter keeps the error and attempts", setup: withEvents, cmd: update(deadLetter("e1")),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				ev := v.AsyncEvent("e1")
				if ev.State != dead || ev.Attempts != 3 || ev.ErrorMessage != "boom" || ev.Condition != "RetriesExhausted" || ev.DeadUnixNano == 0 {
					t.Fatalf("event = %v", ev)
				}
				if dl := v.DeadLetters(testAccount, "fn", "", 0); len(dl) != 1 || dl[0].Id != "e1" {
					t.Fatalf("dead letters = %v", dl)
				}
			}},
		{name: "a long error message is cut on a rune boundary", setup: withEvents,
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_DEAD_LETTER,
				ErrorMessage: strings.Repeat("a", maxAsyncErrorMessage-1) + "é"}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if got := v.AsyncEvent("e1").ErrorMessage; got != strings.Repeat("a", maxAsyncErrorMessage-1) {
					t.Fatalf("error message is %d bytes, want the %d before the split rune", len(got), maxAsyncErrorMessage-1)
				}
			}},
		{name: "a dead event is not completed", setup: withDead,
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_COMPLETE}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if ev := v.AsyncEvent("e1"); ev == nil || ev.State != dead {
					t.Fatalf("event = %v", ev)
				}
			}},
		{name: "set holders", setup: withEvents,
			cmd: update(&fsmpb.AsyncEventUpdate{Id: "e1", Action: fsmpb.AsyncAction_ASYNC_ACTION_SET_HOLDERS, Holders: []string{"n2", "n3"}}),
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				held := 0
				v.EachAsyncEventHeldBy("n1", func(*fsmpb.AsyncEvent) bool { held++; return true })
				if h := v.AsyncEvent("e1").Holders; len(h) != 2 || h[0] != "n2" || held != 1 {
					t.Fatalf("holders = %v, n1 holds %d", h, held)
				}
			}},
		{name: "redrive resets attempts and age", setup: withDead,
			cmd: &fsmpb.AsyncRedriveCmd{Header: hdr(testAccount), FunctionName: "fn", Ids: []string{"e1", "ghost"}},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				ev := v.AsyncEvent("e1")
				if ev.State != pending || ev.Attempts != 0 || ev.InvokeCount != 0 || ev.Condition != "" || ev.ErrorType != "" {
					t.Fatalf("event = %v", ev)
				}
				if v.AsyncEvent("e2").State != dead {
					t.Fatal("redrive of e1 touched e2")
				}
				var since []string
				v.EachAsyncEventModifiedAfter(v.AsyncEvent("e2").ModifyIndex, func(ev *fsmpb.AsyncEvent) bool { since = append(since, ev.Id); return true })
				if len(since) != 1 || since[0] != "e1" {
					t.Fatalf("modified after the dead-lettering: %v", since)
				}
			}},
		{name: "redrive of another account's function moves nothing", setup: withDead,
			cmd: &fsmpb.AsyncRedriveCmd{Header: hdr("210987654321"), FunctionName: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if _, d := v.AsyncEventCounts(); d != 2 {
					t.Fatalf("%d dead, want 2", d)
				}
			}},
		{name: "purge all of a function", setup: withDead,
			cmd: &fsmpb.AsyncPurgeCmd{Header: hdr(testAccount), FunctionName: "fn"},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if p, d := v.AsyncEventCounts(); p != 0 || d != 0 {
					t.Fatalf("pending %d, dead %d", p, d)
				}
			}},
		{name: "retention purge spares younger events", setup: append(append([]Command{}, withDead...),
			enqueue("e3"), update(deadLetter("e3"))),
			cmd: &fsmpb.AsyncPurgeCmd{Header: hdr(""), DeadBeforeUnixNano: newReplica().clock.Add(5500 * 1e6).UnixNano()},
			check: func(t *testing.T, v *View, _ *fsmpb.ApplyResult) {
				if v.AsyncEvent("e1") != nil || v.AsyncEvent("e3") == nil {
					t.Fatal("retention purged the wrong events")
				}
			}},
		{name: "purge needs a scope", cmd: &fsmpb.AsyncPurgeCmd{Header: hdr("")}, want: CodeInvalid},
	}
}

// randomAsyncCommand draws one of the async commands over a small universe
// of event ids, for the property test.
func randomAsyncCommand(rng *rand.Rand, h *fsmpb.Header, fnName string) Command {
	id := "e" + strconv.Itoa(rng.IntN(6))
	switch rng.IntN(6) {
	case 0:
		cfg := eventCfg([]string{"", "1", "live"}[rng.IntN(3)], int32(rng.IntN(4))-1, int32(rng.IntN(2)*120), "arn:x")
		cfg.FunctionName = fnName
		return &fsmpb.PutEventInvokeConfigCmd{Header: h, Config: cfg, Update: rng.IntN(2) == 0, Fields: []string{"maximum_event_age_s"}}
	case 1:
		return &fsmpb.DeleteEventInvokeConfigCmd{Header: h, FunctionName: fnName}
	case 2:
		c := enqueue(id, "e"+strconv.Itoa(rng.IntN(6)))
		c.Header = h
		return c
	case 3:
		u := &fsmpb.AsyncEventUpdate{Id: id, Action: fsmpb.AsyncAction(1 + rng.IntN(4)), Attempts: int32(rng.IntN(4)),
			Condition: "RetriesExhausted", Holders: []string{"n" + strconv.Itoa(rng.IntN(3))}}
		return &fsmpb.AsyncUpdateCmd{Header: h, Updates: []*fsmpb.AsyncEventUpdate{u}}
	case 4:
		return &fsmpb.AsyncRedriveCmd{Header: h, FunctionName: fnName}
	default:
		return &fsmpb.AsyncPurgeCmd{Header: h, FunctionName: fnName, Ids: []string{id}}
	}
}
