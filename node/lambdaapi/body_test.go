package lambdaapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// TestAPIBodyNotPreallocatedFromContentLength: a CreateFunction claiming
// 60 MB whose client sends 1 KB and goes away costs about 1 KB of buffer,
// not the 60 MB it claimed.
func TestAPIBodyNotPreallocatedFromContentLength(t *testing.T) {
	h := newTestHandler(t)
	const claimed = 60 << 20
	req := httptest.NewRequest("POST", "/2015-03-31/functions", io.MultiReader(bytes.NewReader(make([]byte, 1024)), failingReader{}))
	req.ContentLength = claimed
	rec := httptest.NewRecorder()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)

	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d %s, want 400 (the body broke off)", rec.Code, rec.Body)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got >= claimed/4 {
		t.Fatalf("serving the request allocated %d bytes for a %d-byte claim and 1 KB of body", got, claimed)
	}
	if n := h.BufferedBodyBytes(); n != 0 {
		t.Fatalf("%d bytes still reserved after the request ended", n)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestAPIBodyBudget: a request that cannot fit in what is left of the
// budget is throttled before its body is read, and a finished request
// gives its share back.
func TestAPIBodyBudget(t *testing.T) {
	h := newTestHandler(t)
	h.budget.limit = 1 << 20
	held := &reservation{b: h.budget}
	if !held.grow(900 << 10) {
		t.Fatal("could not reserve within an empty budget")
	}
	body := []byte(`{"FunctionName":"f","Runtime":"python3.11","Handler":"app.handler","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"` +
		string(bytes.Repeat([]byte("A"), 200<<10)) + `"}}`)
	req := httptest.NewRequest("POST", "/2015-03-31/functions", bodyTrap{t, bytes.NewReader(body)})
	req.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("X-Amzn-ErrorType") != "TooManyRequestsException" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %s (Retry-After %q), want 429 TooManyRequestsException", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Header().Get("Retry-After"))
	}
	// Without a Content-Length the reservation grows with the bytes
	// read, and the request is throttled when the next step does not fit.
	chunked := httptest.NewRequest("POST", "/2015-03-31/functions", io.MultiReader(bytes.NewReader(body)))
	chunked.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, chunked)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("chunked body past the budget: %d %s, want 429", rec.Code, rec.Body)
	}
	held.release()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/2015-03-31/functions", bytes.NewReader(body)))
	if rec.Code == http.StatusTooManyRequests {
		t.Fatalf("throttled with the budget free: %s", rec.Body)
	}
	if n := h.BufferedBodyBytes(); n != 0 {
		t.Fatalf("%d bytes still reserved after the requests ended", n)
	}
}

// bodyTrap fails the test if the body is read.
type bodyTrap struct {
	t *testing.T
	io.Reader
}

func (b bodyTrap) Read(p []byte) (int, error) {
	b.t.Error("the body of a throttled request was read")
	return b.Reader.Read(p)
}
