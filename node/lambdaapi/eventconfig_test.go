package lambdaapi

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	const region, account = "local", "123456789012"
	fn := "arn:aws:lambda:local:123456789012:function:"
	for _, tc := range []struct {
		raw  string
		want Target
		ok   bool
	}{
		{raw: "stoke:dlq", ok: true, want: Target{Kind: TargetDeadLetterQueue, ARN: "arn:aws:stoke:local:123456789012:dlq", AccountID: account}},
		{raw: "arn:aws:stoke:local:123456789012:dlq", ok: true, want: Target{Kind: TargetDeadLetterQueue, ARN: "arn:aws:stoke:local:123456789012:dlq", AccountID: account}},
		{raw: fn + "dest", ok: true, want: Target{Kind: TargetFunction, ARN: fn + "dest", AccountID: account, FunctionName: "dest"}},
		{raw: fn + "dest:live", ok: true, want: Target{Kind: TargetFunction, ARN: fn + "dest:live", AccountID: account, FunctionName: "dest", Qualifier: "live"}},
		{raw: "arn:aws:stoke:local:210987654321:dlq"},             // another account's queue
		{raw: "arn:aws:lambda:us-east-1:123456789012:function:x"}, // another region
		{raw: "arn:aws:lambda:local:210987654321:function:x"},     // another account
		{raw: "arn:aws:sqs:local:123456789012:queue"},             // a service Stoke lacks
		{raw: fn + "bad name"},
		{raw: fn + "x:y:z"},
		{raw: "dest"},
		{raw: ""},
	} {
		got, err := ParseTarget(region, account, tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.raw, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.raw, got, tc.want)
		}
		if !tc.ok && err.Type != "InvalidParameterValueException" {
			t.Errorf("%q: %s, want InvalidParameterValueException", tc.raw, err.Type)
		}
	}
}

// FuzzParseTarget: any string parses or is refused with Lambda's
// exception, and a parsed target's canonical ARN parses to itself.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"stoke:dlq", "arn:aws:lambda:local:123456789012:function:f:1", "arn:aws:sns:local:1:t", "arn::::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ParseTarget("local", "123456789012", raw)
		if err != nil {
			if err.Status != 400 || !strings.Contains(err.Type, "InvalidParameterValue") {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		again, err := ParseTarget("local", "123456789012", got.ARN)
		if err != nil || again != got {
			t.Fatalf("canonical ARN %q of %q does not parse to the same target: %+v, %v", got.ARN, raw, again, err)
		}
	})
}

// TestListEventInvokeConfigsPaginates follows NextMarker one config at a
// time and checks MaxItems' bounds (1..50).
func TestListEventInvokeConfigsPaginates(t *testing.T) {
	h := newTestHandler(t)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions", createBody(`,"Publish":true`)); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	do(t, h, "PUT", "/2015-03-31/functions/fn/configuration", `{"MemorySize":256}`)
	if rec, _ := do(t, h, "POST", "/2015-03-31/functions/fn/versions", `{}`); rec.Code != 201 {
		t.Fatalf("publish: %d %s", rec.Code, rec.Body)
	}
	for _, q := range []string{"2", "$LATEST", "1"} {
		if rec, _ := do(t, h, "PUT", "/2019-09-25/functions/fn/event-invoke-config?Qualifier="+q, `{"MaximumRetryAttempts":1}`); rec.Code != 200 {
			t.Fatalf("put %s: %d %s", q, rec.Code, rec.Body)
		}
	}
	var got []string
	marker := ""
	for pages := 0; pages < 10; pages++ {
		rec, out := do(t, h, "GET", "/2019-09-25/functions/fn/event-invoke-config/list?MaxItems=1&Marker="+marker, "")
		if rec.Code != 200 {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		for _, c := range out["FunctionEventInvokeConfigs"].([]any) {
			arn := c.(map[string]any)["FunctionArn"].(string)
			got = append(got, arn[strings.LastIndexByte(arn, ':')+1:])
		}
		next, _ := out["NextMarker"].(string)
		if next == "" {
			break
		}
		marker = next
	}
	if strings.Join(got, " ") != "$LATEST 1 2" {
		t.Fatalf("pages gave %v, want [$LATEST 1 2]", got)
	}
	for _, n := range []string{"0", "51", "x"} {
		rec, _ := do(t, h, "GET", "/2019-09-25/functions/fn/event-invoke-config/list?MaxItems="+n, "")
		if rec.Code != 400 || rec.Header().Get("X-Amzn-ErrorType") != "InvalidParameterValueException" || !strings.Contains(rec.Body.String(), "between 1 and 50") {
			t.Errorf("MaxItems=%s: %d %s", n, rec.Code, rec.Body)
		}
	}
}
