package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stokehq/stoke/chaos/history"
	"github.com/stokehq/stoke/node"
)

// TestControlOutcomes drives the recording client against a fake API and
// checks how each kind of answer is recorded.
func TestControlOutcomes(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("Qualifier") {
		case "conflict":
			w.Header().Set("X-Amzn-ErrorType", "ResourceConflictException")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"Type":"User","message":"exists"}`))
		case "unavailable":
			w.Header().Set("X-Amzn-ErrorType", "ServiceException")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"Type":"Service","message":"no leader"}`))
		case "hang":
			<-release
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"Configuration":{"Description":"d1","Version":"$LATEST"}}`))
		}
	}))
	defer srv.Close()
	defer close(release)
	creds := node.Credentials{AccountID: "123456789012", AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret", Region: "local"}
	rec := history.NewRecorder()
	c := NewControl(rec, ControlConfig{Client: 7, Node: "n1", Endpoint: srv.URL, Credentials: creds, Timeout: 300 * time.Millisecond})
	defer c.Close()

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	dead := NewControl(rec, ControlConfig{Client: 8, Node: "n2", Endpoint: closed, Credentials: creds})
	defer dead.Close()

	ctx := context.Background()
	tests := []struct {
		name    string
		op      history.Op
		outcome history.Outcome
		text    string
	}{
		{"acknowledged", c.Get(ctx, "f", ""), history.OK, ""},
		{"refused", c.Get(ctx, "f", "conflict"), history.Fail, "ResourceConflictException"},
		{"server error", c.Get(ctx, "f", "unavailable"), history.Unknown, "503 ServiceException"},
		{"timeout", c.Get(ctx, "f", "hang"), history.Unknown, "timeout"},
		{"nobody listening", dead.Get(ctx, "f", ""), history.Fail, ErrConnectionRefused},
	}
	for _, tt := range tests {
		if tt.op.Outcome != tt.outcome || tt.op.Error != tt.text {
			t.Errorf("%s: recorded %s %q, want %s %q", tt.name, tt.op.Outcome, tt.op.Error, tt.outcome, tt.text)
		}
	}
	if out := tests[0].op.Output.(history.ControlOutput); out.Description != "d1" {
		t.Errorf("acknowledged read recorded output %+v", out)
	}
	if op := tests[0].op; op.Client != 7 || op.Node != "n1" || op.Kind != history.GetFunction || op.Key != "f" {
		t.Errorf("recorded %+v", op)
	}
	if n := len(rec.Ops()); n != len(tests) {
		t.Errorf("%d ops recorded, want %d", n, len(tests))
	}
}
