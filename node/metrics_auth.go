package node

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsToken is the bearer token /metrics asks for. It is derived from
// the cluster secret, so every node of a cluster accepts the same token and
// one Prometheus credentials file scrapes them all.
func (a *Agent) metricsToken() string {
	return hex.EncodeToString(a.secret.Derive("metrics-scrape/v1"))
}

// metricsHandler serves the agent's registry. /metrics names every
// tenant's functions, so outside --dev (and unless the operator opened it
// with MetricsOpen) a scrape must carry "Authorization: Bearer TOKEN" with
// the token from the metrics token file, which this writes (0600).
func (a *Agent) metricsHandler() (http.Handler, error) {
	serve := promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{})
	if a.cfg.Dev || a.cfg.MetricsOpen {
		return serve, nil
	}
	token := a.metricsToken()
	path := a.cfg.metricsTokenFile()
	if err := writeMetricsToken(path, token); err != nil {
		return nil, fmt.Errorf("node: metrics token file: %w", err)
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="stoke-metrics"`)
			http.Error(w, "/metrics needs Authorization: Bearer with the token in the node's metrics token file ("+
				filepath.Base(path)+" in its data dir by default)", http.StatusUnauthorized)
			return
		}
		serve.ServeHTTP(w, r)
	}), nil
}

// writeMetricsToken writes token to path unless it already holds it, so an
// operator's scraper can read the file on every node.
func writeMetricsToken(path, token string) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == token+"\n" {
		return nil
	}
	return writePrivateFile(path, []byte(token+"\n"))
}
