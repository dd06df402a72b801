package admission

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func ptr(n int32) *int32 { return &n }

var ctx = context.Background()

func TestLimiterSeparatesReservedAndUnreserved(t *testing.T) {
	l := NewLimiter()
	acct := Request{AccountID: "a", AccountLimit: 10, ReservedTotal: 4}
	reserved := acct
	reserved.Function, reserved.Reserved = "r", ptr(4)
	other := acct
	other.Function = "o"

	var releases []func()
	for range 4 {
		rel, err := l.Admit(ctx, reserved)
		if err != nil {
			t.Fatalf("reserved admit: %v", err)
		}
		releases = append(releases, rel)
	}
	var te *ThrottleError
	if _, err := l.Admit(ctx, reserved); !errors.As(err, &te) || te.Reason != ReasonReserved || !errors.Is(err, ErrThrottled) {
		t.Fatalf("5th reserved admit: %v, want a reserved throttle", err)
	}
	// The unreserved pool (10 - 4 = 6) is untouched by the reserved function.
	for i := range 6 {
		rel, err := l.Admit(ctx, other)
		if err != nil {
			t.Fatalf("unreserved admit %d: %v", i, err)
		}
		releases = append(releases, rel)
	}
	if _, err := l.Admit(ctx, other); !errors.As(err, &te) || te.Reason != ReasonAccount {
		t.Fatalf("7th unreserved admit: %v, want an account throttle", err)
	}
	if got := l.InFlight("a"); got != 10 {
		t.Fatalf("in flight %d, want 10", got)
	}
	releases[0]()
	releases[0]() // a second release must not free a second slot
	if _, err := l.Admit(ctx, reserved); err != nil {
		t.Fatalf("admit after release: %v", err)
	}
	if _, err := l.Admit(ctx, reserved); err == nil {
		t.Fatal("double release freed two slots")
	}
}

func TestZeroReservedAlwaysThrottles(t *testing.T) {
	l := NewLimiter()
	_, err := l.Admit(ctx, Request{AccountID: "a", Function: "f", Reserved: ptr(0), AccountLimit: 1000})
	var te *ThrottleError
	if !errors.As(err, &te) || te.Reason != ReasonReserved {
		t.Fatalf("err = %v, want reserved throttle", err)
	}
}

func TestLimiterNeverOversubscribesUnderContention(t *testing.T) {
	l := NewLimiter()
	req := Request{AccountID: "a", Function: "f", AccountLimit: 50}
	const callers = 200
	var (
		mu        sync.Mutex
		inFlight  int
		peak      int
		admitted  int
		throttled int
		wg        sync.WaitGroup
		tried     sync.WaitGroup
	)
	// Every admitted caller holds its slot until all callers have tried,
	// so the limiter sees all 200 at once.
	hold := make(chan struct{})
	tried.Add(callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := l.Admit(ctx, req)
			mu.Lock()
			if err != nil {
				if errors.Is(err, ErrThrottled) {
					throttled++
				}
				mu.Unlock()
				tried.Done()
				return
			}
			admitted++
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			tried.Done()
			<-hold
			mu.Lock()
			inFlight--
			mu.Unlock()
			rel()
		}()
	}
	tried.Wait()
	close(hold)
	wg.Wait()
	if peak > 50 {
		t.Fatalf("peak in flight %d exceeds the limit of 50", peak)
	}
	if admitted != 50 || throttled != callers-50 {
		t.Fatalf("admitted %d and throttled %d of %d callers holding their slots, want 50 and %d", admitted, throttled, callers, callers-50)
	}
	if l.InFlight("a") != 0 {
		t.Fatalf("%d still in flight after every release", l.InFlight("a"))
	}
}
