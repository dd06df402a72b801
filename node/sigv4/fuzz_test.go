package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"testing"
)

// FuzzVerify feeds arbitrary raw HTTP requests to Verify. It must never
// panic, must always return either a principal or an *Error with a known
// kind, and can only succeed for requests signed with the test secret
// (which the seeds are: mutations of them should fail cleanly).
func FuzzVerify(f *testing.F) {
	for _, o := range []signOpts{
		{body: `{"a":1}`},
		{body: "", presignExpires: "60"},
		{body: "x", before: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte("x")))
			r.Header.Set("X-Amz-Client-Context", "a   b")
		}},
	} {
		req := signed(f, o)
		dump, err := httputil.DumpRequest(req, true)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dump)
	}
	f.Add([]byte("GET /?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F20260314%2Flocal%2Flambda%2Faws4_request&X-Amz-Date=20260314T150926Z&X-Amz-Expires=9999999999999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=00 HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add([]byte("POST //a/../%zz HTTP/1.1\r\nHost: h\r\nAuthorization: AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=zz\r\nX-Amz-Date: 2\r\n\r\n"))

	v := newTestVerifier(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<16))
		if err != nil {
			return
		}
		p, err := v.Verify(context.Background(), req, body)
		if err == nil {
			if p.AccountID != testAccount {
				t.Fatalf("verified with principal %+v", p)
			}
			return
		}
		var se *Error
		if !errors.As(err, &se) || se.Kind.Sentinel() == nil || se.Message == "" {
			t.Fatalf("Verify returned %T %v, want an *Error with a kind and message", err, err)
		}
	})
}
