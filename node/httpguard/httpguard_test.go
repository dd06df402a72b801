package httpguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127/8 to lo, so each is a distinct client address).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// admitted reports whether the server kept c: it greets every connection
// it accepts, and a refused one is closed without a word.
func admitted(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(c).ReadString('\n')
	switch {
	case err == nil && line == "hello\n":
		return true
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
		return false
	}
	t.Fatalf("neither greeted nor closed: %q, %v", line, err)
	return false
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestSecurityListenerBoundsConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{MaxConns: 3, MaxConnsPerAddr: 2}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	served := make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello\n")
			served <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(served)
		for c := range served {
			c.Close()
		}
	})
	addr := inner.Addr().String()

	steps := []struct {
		src  string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1", true},
		{"127.0.0.1", false}, // past the per-address bound
		{"127.0.0.2", true},  // another address still gets in
		{"127.0.0.3", false}, // past the total bound
	}
	for i, s := range steps {
		if got := admitted(t, dialFrom(t, s.src, addr)); got != s.want {
			t.Fatalf("step %d from %s: admitted %t, want %t", i, s.src, got, s.want)
		}
	}
	if open, from1, refused := l.Stats("127.0.0.1"); open != 3 || from1 != 2 || refused != 2 {
		t.Fatalf("Stats = %d open, %d from 127.0.0.1, %d refused; want 3, 2, 2", open, from1, refused)
	}
	// A slot given back is usable again.
	(<-served).Close()
	if !admitted(t, dialFrom(t, "127.0.0.1", addr)) {
		t.Fatal("a slot freed by a closed connection was not reused")
	}
}

// serve runs an http.Server over h with cfg's body deadlines until the
// test ends and returns its address.
func serve(t *testing.T, cfg Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: cfg.BodyDeadlines(h), ReadHeaderTimeout: time.Minute}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// TestSecurityBodyDeadlineClosesDrippingBody: headers, then a byte now and then:
// the body read fails with a deadline error after the grace, the handler
// answers and the connection is closed, while the client is still dripping.
func TestSecurityBodyDeadlineClosesDrippingBody(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serve(t, Config{BodyGrace: 200 * time.Millisecond, BodyMinRate: 1024}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		w.WriteHeader(http.StatusRequestTimeout)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-dripped }()

	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the handler's body read ended with %v, want a deadline error", err)
		}
	case <-time.After(time.Minute): // bounds a failing run only
		t.Fatal("the dripping body was still being read after a minute")
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after the deadline")
	}
}

// TestSecurityBodyDeadlineLiftedOnceBodyComplete: a handler that has read its body
// and then works past the grace keeps its request context (the server's
// watch for a vanished client reads the connection after the body, and a
// stale deadline there would cancel the request).
func TestSecurityBodyDeadlineLiftedOnceBodyComplete(t *testing.T) {
	const grace = 100 * time.Millisecond
	result := make(chan error, 1)
	addr := serve(t, Config{BodyGrace: grace, BodyMinRate: 1024}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			result <- err
			return
		}
		// Work well past the deadline the body was read under.
		select {
		case <-r.Context().Done():
			result <- fmt.Errorf("request cancelled after its body was read: %w", context.Cause(r.Context()))
		case <-time.After(grace + 2*time.Second):
			result <- nil
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{MaxConns: 1, MaxConnsPerAddr: 2}.Validate()
	for _, want := range []string{"MaxConnsPerAddr", "BodyGrace", "BodyMinRate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
