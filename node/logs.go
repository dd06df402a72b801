package node

import (
	"bufio"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stokehq/stoke/node/lambdaapi"
	"github.com/stokehq/stoke/runtime"
)

// Function logs live on the node whose sandbox wrote them (runtime's layout:
// LOG_DIR/<account>/<function>/<yyyy>/<mm>/<dd>/[<version>]<sandbox>, one
// "timestamp<TAB>message" line per record). `stoke logs` asks any node,
// which reads its own files and asks every other live node for theirs over
// an internal endpoint authenticated with a key derived from the cluster
// secret.

const (
	logTimeLayout   = "2006-01-02T15:04:05.000Z"
	defaultLogLimit = 1000
	maxLogLimit     = 10000
	internalToken   = "X-Stoke-Internal-Token"
)

// LogEvent is one log record.
type LogEvent struct {
	Timestamp string `json:"timestamp"`
	Stream    string `json:"stream"`
	Node      string `json:"node"`
	Message   string `json:"message"`
}

type logQuery struct {
	account, function string
	since             time.Time
	limit             int
}

func (a *Agent) logDir() string { return filepath.Join(a.cfg.DataDir, "logs") }

// logSweepEvery is how often the agent deletes function log streams past
// their retention: retention is kept to within the hour.
const logSweepEvery = time.Hour

// sweepLogs deletes expired function log streams at once and then every
// logSweepEvery, until the agent stops.
func (a *Agent) sweepLogs(gate *runtime.LogGate) {
	defer a.wg.Done()
	t := time.NewTicker(logSweepEvery)
	defer t.Stop()
	for {
		n, err := gate.Sweep(time.Now())
		if err != nil {
			a.log.Warn("sweeping expired function logs", "err", err)
		}
		if n > 0 {
			a.log.Info("deleted expired function log streams", "streams", n, "retention", gate.Limits().Retention)
		}
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

// localLogs reads this node's records of a function newer than since, the
// newest limit of them, oldest first.
func (a *Agent) localLogs(q logQuery) ([]LogEvent, error) {
	if !functionNameOK(q.function) || !accountOK(q.account) {
		return nil, nil
	}
	root := filepath.Join(a.logDir(), q.account, q.function)
	var events []LogEvent
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.ModTime().Before(q.since) {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		return readLogFile(path, filepath.ToSlash(rel), a.nodeID, q.since, q.limit, &events)
	})
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Timestamp < events[j].Timestamp })
	if len(events) > q.limit {
		events = events[len(events)-q.limit:]
	}
	return events, nil
}

// readLogFile appends the newest limit records of one stream file newer
// than since to out. A stream's records are in time order, so the newest
// limit of all streams are among each stream's newest limit: memory stays
// bounded by limit per stream however large a file has grown.
func readLogFile(path, stream, nodeID string, since time.Time, limit int, out *[]LogEvent) error {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	cutoff := since.UTC().Format(logTimeLayout)
	var events []LogEvent
	for sc.Scan() {
		ts, msg, ok := strings.Cut(sc.Text(), "\t")
		if !ok || ts < cutoff {
			continue
		}
		events = append(events, LogEvent{Timestamp: ts, Stream: stream, Node: nodeID, Message: msg})
		if len(events) >= 2*limit {
			events = append(events[:0], events[len(events)-limit:]...)
		}
	}
	if len(events) > limit {
		events = events[len(events)-limit:]
	}
	*out = append(*out, events...)
	return nil
}

func functionNameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func accountOK(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return len(s) == 12 && err == nil
}

func parseLogQuery(r *http.Request, account string) (logQuery, error) {
	q := logQuery{account: account, function: r.PathValue("function"), limit: defaultLogLimit, since: time.Now().Add(-time.Hour)}
	v := r.URL.Query()
	if s := v.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			q.since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			q.since = t
		} else {
			return q, fmt.Errorf("since %q is neither a duration (10m) nor an RFC 3339 time", s)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLogLimit {
			return q, fmt.Errorf("limit must be 1..%d", maxLogLimit)
		}
		q.limit = n
	}
	return q, nil
}

// registerLogs adds GET /stoke/v1/logs/{function} (any key; its account's
// functions) and the internal per-node endpoint.
func (a *Agent) registerLogs() {
	a.api.Handle("GET /stoke/v1/logs/{function}", false, 1024, func(ctx context.Context, r *http.Request, _ []byte, caller lambdaapi.Principal) (any, int, error) {
		q, err := parseLogQuery(r, caller.AccountID)
		if err != nil {
			return nil, 0, &lambdaapi.Error{Status: 400, Type: "InvalidParameterValueException", Message: err.Error()}
		}
		events, err := a.localLogs(q)
		if err != nil {
			return nil, 0, err
		}
		for _, m := range a.gossip.Members() {
			if m.ID == a.nodeID || !a.gossip.IsAlive(m.ID) || m.HTTPAddr == "" {
				continue
			}
			peer, err := a.peerLogs(ctx, m.HTTPAddr, q)
			if err != nil {
				a.log.Warn("could not read a peer's logs", "peer", m.ID, "err", err)
				continue
			}
			events = append(events, peer...)
		}
		sort.SliceStable(events, func(i, j int) bool { return events[i].Timestamp < events[j].Timestamp })
		if len(events) > q.limit {
			events = events[len(events)-q.limit:]
		}
		return map[string]any{"events": events}, http.StatusOK, nil
	})
	a.mux.HandleFunc("GET /stoke/v1/internal/logs/{account}/{function}", func(w http.ResponseWriter, r *http.Request) {
		if !hmac.Equal([]byte(r.Header.Get(internalToken)), []byte(a.internalToken())) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		q, err := parseLogQuery(r, r.PathValue("account"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events, err := a.localLogs(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(events)
	})
}

func (a *Agent) internalToken() string {
	return hex.EncodeToString(a.secret.Derive("internal-http/v1"))
}

func (a *Agent) peerLogs(ctx context.Context, httpAddr string, q logQuery) ([]LogEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := fmt.Sprintf("http://%s/stoke/v1/internal/logs/%s/%s?since=%s&limit=%d", httpAddr, q.account, url.PathEscape(q.function),
		url.QueryEscape(q.since.UTC().Format(time.RFC3339Nano)), q.limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(internalToken, a.internalToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %d %s", httpAddr, resp.StatusCode, b)
	}
	var events []LogEvent
	return events, json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&events)
}
