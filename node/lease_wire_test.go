package node

import (
	"reflect"
	"testing"
	"time"

	"github.com/stokehq/stoke/node/admission"
)

// nonZero fails when any field of v (recursively, through structs and
// slices) is its zero value: the fixtures below set every field, so a
// field a conversion forgets shows up as zero after the round trip.
func nonZero(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			nonZero(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
		}
		for i := range v.Len() {
			nonZero(t, path, v.Index(i))
		}
	default:
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
	}
}

func TestLeaseMessagesRoundTrip(t *testing.T) {
	pool := admission.Pool{AccountID: "123456789012", Function: "f"}
	r := admission.Renewal{
		Holder: admission.Holder{Node: "n1", Incarnation: "abc", Age: 1500 * time.Millisecond, CleanStart: true},
		Full:   true,
		Demands: []admission.Demand{{Pool: pool, InFlight: 3, Want: 7, Held: admission.GrantID{Epoch: 4, Seq: 9},
			HeldSlots: 5, HeldRemaining: 1200 * time.Millisecond}},
	}
	nonZero(t, "Renewal", reflect.ValueOf(r))
	if got := renewalFromPB(renewalToPB(r)); !reflect.DeepEqual(got, r) {
		t.Fatalf("renewal round trip:\n got %+v\nwant %+v", got, r)
	}
	grants := []admission.Grant{{Pool: pool, ID: admission.GrantID{Epoch: 4, Seq: 10}, Slots: 6, TTL: 3 * time.Second, Retry: true}}
	nonZero(t, "Grant", reflect.ValueOf(grants))
	if got := grantsFromPB(grantsToPB(grants)); !reflect.DeepEqual(got, grants) {
		t.Fatalf("grant round trip:\n got %+v\nwant %+v", got, grants)
	}
}
