package sigv4

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// hostPython is where the host's AWS CLI v1 (and so botocore) lives.
const hostPython = "/root/.pyenv/versions/3.11.7/bin/python3"

func botocorePython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("STOKE_BOTOCORE_PYTHON"), hostPython, "python3"} {
		if p == "" {
			continue
		}
		if err := exec.Command(p, "-c", "import botocore").Run(); err == nil {
			return p
		}
	}
	t.Skip("botocore is not importable (tried $STOKE_BOTOCORE_PYTHON, " + hostPython + ", python3): the botocore compatibility test needs the AWS CLI v1's Python")
	return ""
}

type botocoreCase struct {
	Name    string            `json:"name"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Token   string            `json:"token,omitempty"`
	Presign int               `json:"presign,omitempty"`
}

// TestBotocore signs requests with botocore (SigV4Auth, SigV4QueryAuth) and
// verifies them here, then lets a real botocore Lambda client call a
// verifying server. botocore normalizes paths and collapses all whitespace
// in header values, where the Go SDK does neither.
func TestBotocore(t *testing.T) {
	python := botocorePython(t)
	v := newTestVerifier(t, func(c *Config) { c.Now = time.Now })
	srv := verifyingServer(t, v)

	cases := []botocoreCase{
		{Name: "invoke by ARN", Method: "POST", Path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Alocal%3A123456789012%3Afunction%3Amy-fn/invocations", Query: "Qualifier=%24LATEST", Body: `{"x": 1}`},
		{Name: "repeated keys, empty values", Method: "DELETE", Path: "/2017-03-31/tags/arn%3Aaws%3Alambda%3Alocal%3A123456789012%3Afunction%3Amy-fn", Query: "tagKeys=b&tagKeys=a&tagKeys=&Marker="},
		{Name: "header spaces and tabs", Method: "POST", Path: "/2015-03-31/functions/my-fn/invocations", Headers: map[string]string{"X-Amz-Client-Context": "a   b \t c", "X-Amz-Log-Type": "Tail"}, Body: "{}"},
		{Name: "dot segments and double slash", Method: "GET", Path: "/2015-03-31//functions/./x/../my-fn"},
		{Name: "session token", Method: "GET", Path: "/2015-03-31/functions/my-fn", Token: "session-token"},
		{Name: "presigned GET", Method: "GET", Path: "/2015-03-31/functions/my-fn%3A%24LATEST", Query: "Qualifier=%24LATEST&x=", Presign: 300},
		{Name: "presigned with token", Method: "GET", Path: "/2015-03-31/functions", Query: "MaxItems=5", Presign: 60, Token: "tok"},
	}
	job, err := json.Marshal(map[string]any{"endpoint": srv.URL, "key": testKeyID, "secret": testSecret, "region": testRegion, "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/botocore_sign.py")
	cmd.Stdin = bytes.NewReader(job)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("botocore_sign.py: %v\n%s", err, stderr.String())
	}
	var res struct {
		Signed []struct {
			Name, Method, URL, Body string
			Headers                 [][2]string
		}
		Client            map[string]string
		ClientWrongSecret map[string]string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if len(res.Signed) != len(cases) {
		t.Fatalf("botocore signed %d requests, want %d", len(res.Signed), len(cases))
	}
	for _, s := range res.Signed {
		t.Run("signed/"+s.Name, func(t *testing.T) {
			req, err := http.NewRequest(s.Method, s.URL, strings.NewReader(s.Body))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range s.Headers {
				if strings.EqualFold(h[0], "host") {
					req.Host = h[1]
					continue
				}
				req.Header.Add(h[0], h[1])
			}
			status, m := send(t, req)
			if status != http.StatusOK {
				t.Fatalf("status %d, verdict %v", status, m)
			}
			// The same request with one byte of body or query changed
			// must not verify.
			tampered, _ := http.NewRequest(s.Method, s.URL+"&tampered=1", strings.NewReader(s.Body))
			tampered.Header, tampered.Host = req.Header, req.Host
			if status, m := send(t, tampered); status != http.StatusForbidden || m["kind"] != KindSignatureMismatch.String() {
				t.Fatalf("tampered request: status %d, verdict %v", status, m)
			}
		})
	}
	for name, got := range res.Client {
		if got != "ok" {
			t.Errorf("botocore client %s with the right secret: %s", name, got)
		}
	}
	if len(res.Client) == 0 {
		t.Error("botocore client made no calls")
	}
	for name, got := range res.ClientWrongSecret {
		if want := "AccessDeniedException: " + msgSignatureMismatch; got != want {
			t.Errorf("botocore client %s with a wrong secret: %q, want %q", name, got, want)
		}
	}
}
