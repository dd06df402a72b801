package node

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestMetricsNeedTheScrapeToken: outside --dev, /metrics (which names
// every tenant's functions) answers 401 without the token from the metrics
// token file, and serves the registry with it.
func TestMetricsNeedTheScrapeToken(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Dev = false
	cfg.Cluster.Server = true
	a := startAgent(t, cfg)

	scrapeWith := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	b, err := os.ReadFile(cfg.metricsTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(cfg.metricsTokenFile()); fi.Mode().Perm() != 0o600 {
		t.Errorf("metrics token file mode %v, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(b))
	for _, auth := range []string{"", "Bearer ", "Bearer " + token[:len(token)-1], "Basic " + token} {
		if code, body := scrapeWith(auth); code != http.StatusUnauthorized || strings.Contains(body, "stoke_") {
			t.Errorf("Authorization %q: %d %q, want 401 without metrics", auth, code, body)
		}
	}
	if code, body := scrapeWith("Bearer " + token); code != http.StatusOK || !strings.Contains(body, "# TYPE stoke_async_accept_batch_events histogram") {
		t.Errorf("with the token: %d, body has no metrics: %.200q", code, body)
	}
}
