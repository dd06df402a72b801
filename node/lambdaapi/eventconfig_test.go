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
