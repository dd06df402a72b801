package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/httpguard"
)

// These tests attack the API over raw sockets, the way a hostile client
// would, and judge it by what comes back on the wire.

// signedRequest signs method path with creds over body (Go SDK signer);
// declare also puts the payload hash in X-Amz-Content-Sha256, as the
// JavaScript SDK does. headers are set before signing.
func signedRequest(t testing.TB, a *Agent, creds Credentials, method, path string, body []byte, declare bool, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.HTTPAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if declare {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	req.ContentLength = int64(len(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
		req, hash, "lambda", a.cfg.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// writeHead writes req's request line and headers with the given
// Content-Length, and no body.
func writeHead(t testing.TB, w io.Writer, req *http.Request, contentLength int64) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Method, req.URL.RequestURI(), req.URL.Host, contentLength)
	for k, vs := range req.Header {
		if k == "Content-Length" || k == "Host" {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		t.Fatal(err)
	}
}

// readResponse reads one response from conn; the deadline only bounds a
// failing test (a server that waits for the body never answers).
func readResponse(t testing.TB, conn net.Conn) *http.Response {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response while the client still held the body: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func dialAPI(t testing.TB, a *Agent) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestAPIRefusesUnauthenticatedBodiesUnread: a request whose headers do not
// authenticate it is refused before its body is read, so a claimed 70 MB
// CreateFunction body costs the node nothing: the 403 arrives while the
// client still holds all but the first 64 KB of it.
func TestAPIRefusesUnauthenticatedBodiesUnread(t *testing.T) {
	a := startTestAgent(t)
	_, admin := adminClient(t, a)
	const claimed = 70_000_000
	body := []byte(`{"FunctionName":"f"}`)
	tests := []struct {
		name string
		req  func() *http.Request
		typ  string
	}{
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/2015-03-31/functions", nil)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, "MissingAuthenticationTokenException"},
		{"unknown key", func() *http.Request {
			return signedRequest(t, a, Credentials{AccessKeyID: "AKIANOBODY0000000000", SecretAccessKey: "x"}, "POST", "/2015-03-31/functions", body, false, nil)
		}, "UnrecognizedClientException"},
		{"bad signature over a declared payload hash", func() *http.Request {
			return signedRequest(t, a, Credentials{AccessKeyID: admin.AccessKeyID, SecretAccessKey: "not-the-secret"}, "POST", "/2015-03-31/functions", body, true, nil)
		}, "InvalidSignatureException"},
		{"unsigned invocation header", func() *http.Request {
			r := signedRequest(t, a, admin, "POST", "/2015-03-31/functions", body, false, nil)
			r.Header.Set("X-Amz-Invocation-Type", "DryRun")
			return r
		}, "IncompleteSignatureException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialAPI(t, a)
			writeHead(t, conn, tc.req(), claimed)
			if _, err := conn.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
				t.Fatal(err)
			}
			resp := readResponse(t, conn)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != tc.typ {
				msg, _ := io.ReadAll(resp.Body)
				t.Fatalf("got %d %s %s, want 403 %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), msg, tc.typ)
			}
		})
	}
}

// TestAPIBodyBudgetThrottles: while requests hold all the bytes the node
// may buffer, another signed request is answered 429
// TooManyRequestsException (with Retry-After) before its body is read;
// once they finish, the same request goes through.
func TestAPIBodyBudgetThrottles(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	if os.Geteuid() != 0 {
		cfg.Worker.InsecureNoSandbox = true
	}
	cfg.MaxBufferedRequestBytes = 1 << 20
	a := startAgent(t, cfg)
	_, admin := adminClient(t, a)
	big := []byte(`"` + strings.Repeat("x", 700<<10) + `"`) // a JSON payload
	const path = "/2015-03-31/functions/nobody/invocations"

	// send performs a whole signed Invoke of big over a fresh connection.
	send := func() *http.Response {
		conn := dialAPI(t, a)
		writeHead(t, conn, signedRequest(t, a, admin, "POST", path, big, false, nil), int64(len(big)))
		// The server may answer without reading the body and close: the
		// write's error is no verdict.
		go func() { _, _ = conn.Write(big) }()
		return readResponse(t, conn)
	}

	// holder sends its headers and part of its body, then waits; its
	// Content-Length is reserved once its headers are authenticated.
	holder := dialAPI(t, a)
	writeHead(t, holder, signedRequest(t, a, admin, "POST", path, big, false, nil), int64(len(big)))
	if _, err := holder.Write(big[:1024]); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, time.Minute, func() error {
		if n := a.api.BufferedBodyBytes(); n != int64(len(big)) {
			return fmt.Errorf("%d bytes reserved, want the holder's %d", n, len(big))
		}
		return nil
	})

	resp := send()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("while the holder holds the budget: %d %s (Retry-After %q), want 429 TooManyRequestsException",
			resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), resp.Header.Get("Retry-After"))
	}

	if _, err := holder.Write(big[1024:]); err != nil {
		t.Fatal(err)
	}
	if resp := readResponse(t, holder); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the holder got %d, want 404 (authenticated, no such function)", resp.StatusCode)
	}
	// The share is given back when the handler returns, just after it
	// answered.
	clustertest.WaitFor(t, time.Minute, func() error {
		if n := a.api.BufferedBodyBytes(); n != 0 {
			return fmt.Errorf("%d bytes still reserved", n)
		}
		return nil
	})
	if resp := send(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after the holder finished: %d, want 404", resp.StatusCode)
	}
}

// TestAPIRefusesReplayWithUnsignedInvocationHeader: a captured signed
// Invoke replayed with an X-Amz-Invocation-Type it was not signed with is
// refused, not run as a DryRun (or Event).
func TestAPIRefusesReplayWithUnsignedInvocationHeader(t *testing.T) {
	a := startTestAgent(t)
	_, admin := adminClient(t, a)
	captured := signedRequest(t, a, admin, "POST", "/2015-03-31/functions/nobody/invocations", nil, false, nil)
	do := func(r *http.Request) *http.Response {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := do(captured.Clone(context.Background())); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the captured request: %d, want 404 (authenticated, no such function)", resp.StatusCode)
	}
	for _, h := range [][2]string{{"X-Amz-Invocation-Type", "DryRun"}, {"X-Amz-Log-Type", "Tail"}, {"X-Amz-Client-Context", "e30="}} {
		replay := captured.Clone(context.Background())
		replay.Header.Set(h[0], h[1])
		resp := do(replay)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != "IncompleteSignatureException" {
			t.Errorf("replay with %s: %d %s, want 403 IncompleteSignatureException", h[0], resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
		}
	}
}

// TestAPIStaysUpUnderDrippingConnections: 2,000 connections from 127.0.0.1
// each send the signed headers of an Invoke and then a byte of its body
// every second. The node holds at most MaxConnsPerAddr of them, closes the
// rest at once, cuts every held one off with a 408 when its body falls
// behind the minimum rate, and meanwhile a client at another address
// invokes a function normally. The attack ends by itself.
func TestAPIStaysUpUnderDrippingConnections(t *testing.T) {
	const drippers, perAddr = 2000, 500
	cfg := testConfig(t, t.TempDir())
	if os.Geteuid() != 0 {
		cfg.Worker.InsecureNoSandbox = true
	}
	cfg.HTTP.MaxConnsPerAddr = perAddr
	cfg.HTTP.MaxConns = 4 * perAddr
	cfg.HTTP.BodyGrace = 20 * time.Second // long enough to hold them all while the honest client calls
	a := startAgent(t, cfg)
	_, admin := adminClient(t, a)

	// The honest client calls from 127.0.0.2.
	honest := lambda.New(lambda.Options{
		Region:           a.cfg.Region,
		BaseEndpoint:     aws.String("http://" + a.HTTPAddr()),
		Credentials:      credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, ""),
		RetryMaxAttempts: 1,
		HTTPClient: &http.Client{Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
		}},
	})
	if _, err := honest.CreateFunction(bg, &lambda.CreateFunctionInput{
		FunctionName: aws.String("steady"), Runtime: types.RuntimePython311, Handler: aws.String("app.handler"),
		Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, "v1")},
	}); err != nil {
		t.Fatal(err)
	}

	// One signed head serves every dripper (a replay within the skew
	// window verifies as well as the original).
	body := []byte(`"` + strings.Repeat("x", 100_000) + `"`)
	head := signedRequest(t, a, admin, "POST", "/2015-03-31/functions/steady/invocations", body, false, nil)
	var buf bytes.Buffer
	writeHead(t, &buf, head, int64(len(body)))

	stop := make(chan struct{}) // ends the attack early if the test fails
	t.Cleanup(func() { close(stop) })
	outcomes := make(chan string, drippers)
	for range drippers {
		go func() { outcomes <- drip(a.HTTPAddr(), buf.Bytes(), stop) }()
	}
	guard := a.httpLn.(*httpguard.Listener)
	clustertest.WaitFor(t, time.Minute, func() error {
		if _, held, refused := guard.Stats("127.0.0.1"); held < perAddr || refused == 0 {
			return fmt.Errorf("127.0.0.1 holds %d connections (%d refused), want the cap of %d", held, refused, perAddr)
		}
		return nil
	})

	inv, out := invokeJSON(t, honest, &lambda.InvokeInput{FunctionName: aws.String("steady"), Payload: []byte(`{"n":1}`)})
	if inv.StatusCode != http.StatusOK || out.Event["n"] != 1.0 {
		t.Fatalf("the honest invoke under attack: status %d, function saw %+v", inv.StatusCode, out)
	}

	counts := map[string]int{}
	for range drippers {
		select {
		case o := <-outcomes:
			counts[o]++
		case <-time.After(3 * time.Minute): // bounds a failing run only
			t.Fatalf("drippers still connected after 3 minutes: %v so far", counts)
		}
	}
	t.Logf("dripper outcomes: %v", counts)
	if counts["refused"] == 0 || counts["deadline"] < 1 || counts["refused"]+counts["deadline"] != drippers {
		t.Fatalf("dripper outcomes %v: want every one refused at accept or cut off by the body deadline (408)", counts)
	}
}

// drip sends head, then a byte of the body every second until the server
// answers or closes, and says how the server ended it: "refused" (closed
// without a word), "deadline" (408 RequestTimeoutException) or what else
// happened.
func drip(addr string, head []byte, stop <-chan struct{}) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	if _, err := conn.Write(head); err != nil {
		return "refused"
	}
	ended := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ended:
				return
			case <-stop:
				conn.Close()
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	defer close(ended)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset") {
			return "refused"
		}
		return "read: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusRequestTimeout && resp.Header.Get("X-Amzn-ErrorType") == "RequestTimeoutException" {
		return "deadline"
	}
	return fmt.Sprintf("status %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
}
