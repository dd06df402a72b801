package lambdaapi

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func seedZip() string {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("app.py")
	w.Write([]byte("def handler(e, c): return e\n"))
	zw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func createBody(extra string) string {
	return `{"FunctionName":"fn","Runtime":"python3.11","Handler":"app.handler","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"` +
		seedZip() + `"}` + extra + `}`
}

// FuzzHandler sends arbitrary method, path, query, headers and body through
// the whole API over a handler that already holds a function: nothing
// panics, nothing answers 5xx (every dependency is healthy), and every
// error carries Lambda's shape.
func FuzzHandler(f *testing.F) {
	seeds := []struct{ method, path, body, header string }{
		{"POST", "/2015-03-31/functions", createBody(""), ""},
		{"POST", "/2015-03-31/functions", createBody(`,"MemorySize":-5,"Environment":{"Variables":{"A":"b"}}`), ""},
		{"POST", "/2015-03-31/functions", `{"FunctionName":`, ""},
		{"POST", "/2015-03-31/functions", `{"Code":{"ZipFile":"!!"}}`, ""},
		{"GET", "/2015-03-31/functions/fn?Qualifier=$LATEST", "", ""},
		{"GET", "/2015-03-31/functions/arn:aws:lambda:local:123456789012:function:fn:1", "", ""},
		{"POST", "/2015-03-31/functions/fn/invocations", `{"a":1}`, "X-Amz-Client-Context=eyJjdXN0b20iOnt9fQ=="},
		{"POST", "/2015-03-31/functions/fn:live/invocations?Qualifier=other", `[]`, "X-Amz-Invocation-Type=DryRun"},
		{"PUT", "/2015-03-31/functions/fn/configuration", `{"Timeout":0,"Environment":{"Variables":{"AWS_REGION":"x"}}}`, ""},
		{"PUT", "/2015-03-31/functions/fn/code", `{"ZipFile":"` + seedZip() + `","RevisionId":"x"}`, ""},
		{"POST", "/2015-03-31/functions/fn/aliases", `{"Name":"live","FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":2}}}`, ""},
		{"PUT", "/2015-03-31/functions/fn/aliases/live", `{"FunctionVersion":"$LATEST"}`, ""},
		{"GET", "/2015-03-31/functions/?Marker=%%%&MaxItems=0", "", ""},
		{"PUT", "/2017-10-31/functions/fn/concurrency", `{"ReservedConcurrentExecutions":100000}`, ""},
		{"POST", "/2017-03-31/tags/arn:aws:lambda:local:123456789012:function:fn", `{"Tags":{"aws:x":"y"}}`, ""},
		{"DELETE", "/2017-03-31/tags/fn?tagKeys=a&tagKeys=b", "", ""},
		{"POST", "/stoke/v1/keys", `{"AccountId":"123456789012","Admin":true}`, ""},
		{"GET", "/stoke/v1/code/abc?expires=1&signature=00", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.header)
	}
	h := newTestHandler(f)
	req := httptest.NewRequest("POST", "/2015-03-31/functions", strings.NewReader(createBody(`,"Publish":true`)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 201 {
		f.Fatalf("setup create: %d %s", rec.Code, rec.Body)
	}
	f.Fuzz(func(t *testing.T, method, path, body, header string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || strings.ContainsAny(method, " \r\n\t/") || method == "" {
			return
		}
		r, err := http.NewRequest(method, "http://stoke"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if k, v, ok := strings.Cut(header, "="); ok && k != "" && !strings.ContainsAny(k+v, "\r\n:") {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("%s %s -> %d %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var shape struct {
				Type    string `json:"Type"`
				Message string `json:"message"`
			}
			if rec.Header().Get("X-Amzn-ErrorType") == "" || json.Unmarshal(rec.Body.Bytes(), &shape) != nil {
				t.Fatalf("%s %s -> %d without Lambda's error shape: %q", method, path, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzParseFunctionRef: any name parses or is refused; accepted ones carry
// a valid name and never a foreign region.
func FuzzParseFunctionRef(f *testing.F) {
	for _, s := range []string{"fn", "fn:1", "fn:$LATEST", "123456789012:function:fn", "arn:aws:lambda:local:123456789012:function:fn:live",
		"arn:aws:lambda:us-east-1:123456789012:function:fn", "arn:aws:lambda:local:1:function:fn", ":", "fn:", "a:b:c:d:e"} {
		f.Add(s)
	}
	h := newTestHandler(f)
	f.Fuzz(func(t *testing.T, raw string) {
		ref, err := h.parseFunctionRef(raw)
		if err != nil {
			if err.Status != 400 {
				t.Fatalf("%q refused with %d", raw, err.Status)
			}
			return
		}
		if !functionNameRE.MatchString(ref.Name) || (ref.Qualifier != "" && !qualifierRE.MatchString(ref.Qualifier)) {
			t.Fatalf("%q accepted as %+v", raw, ref)
		}
		if strings.HasPrefix(raw, "arn:") && !strings.Contains(raw, ":local:") {
			t.Fatalf("%q accepted from a foreign region", raw)
		}
	})
}
