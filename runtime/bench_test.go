package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks report percentiles of their own samples next to a bare
// baseline measured in the same run, and the ratio, via b.ReportMetric.
// Run with: go test -run '^$' -bench . -benchtime 200x ./runtime/

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func reportVs(b *testing.B, got, base []time.Duration) {
	p50, p99 := percentile(got, 0.50), percentile(got, 0.99)
	b50, b99 := percentile(base, 0.50), percentile(base, 0.99)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(b50.Microseconds()), "base-p50-µs")
	b.ReportMetric(float64(b99.Microseconds()), "base-p99-µs")
	b.ReportMetric(float64(p50)/float64(b50), "p50-ratio")
	b.ReportMetric(float64(p99)/float64(b99), "p99-ratio")
	b.ReportMetric(float64(p50-b50)/1e6, "p50-overhead-ms")
}

func benchPool(b *testing.B, code map[string]string, opts ...poolOpt) *Pool {
	b.Helper()
	quiet := func(c *PoolConfig) {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		c.MemoryBudgetMB = 20000
	}
	return newTestPool(b, code, append([]poolOpt{quiet}, opts...)...)
}

// BenchmarkWarmInvoke: Pool.Invoke of an aws-lambda-go echo function on a
// warm sandbox vs one request to a plain Go HTTP echo server on loopback.
func BenchmarkWarmInvoke(b *testing.B) {
	b.Run("isolated", func(b *testing.B) { benchWarm(b, IsolationFull) })
	b.Run("no-isolation", func(b *testing.B) { benchWarm(b, IsolationNone) })
}

func benchWarm(b *testing.B, iso Isolation) {
	p := benchPool(b, map[string]string{"go": goFunction(b)}, func(c *PoolConfig) { c.Isolation = iso })
	fn := goSpec("warm-echo")
	fn.MemoryMB = 1769
	payload := []byte(`{"op":"echo","value":"hello"}`)
	invoke(b, p, fn, map[string]string{}) // cold start outside the measurement

	srv, url := echoServer(b)
	defer srv.Close()
	outURL, stop := echoServerProcess(b)
	defer stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer client.CloseIdleConnections()
	post := func(u string) {
		resp, err := client.Post(u, "application/json", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range 20 {
		post(url)
		post(outURL)
		invoke(b, p, fn, map[string]string{})
	}

	got := make([]time.Duration, 0, b.N)
	base := make([]time.Duration, 0, b.N)
	baseProc := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res, err := p.Invoke(ctx, fn, Invocation{Payload: payload})
		got = append(got, time.Since(t0))
		if err != nil || res.FunctionError != "" || res.ColdStart {
			b.Fatalf("invoke: %v %s cold=%v", err, res.Payload, res.ColdStart)
		}
		t0 = time.Now()
		post(url)
		base = append(base, time.Since(t0))
		t0 = time.Now()
		post(outURL)
		baseProc = append(baseProc, time.Since(t0))
	}
	b.StopTimer()
	reportVs(b, got, base)
	// The same ratios against the echo server in its own process (a
	// function always runs in another process than the agent).
	b.ReportMetric(float64(percentile(baseProc, 0.5).Microseconds()), "proc-base-p50-µs")
	b.ReportMetric(float64(percentile(got, 0.5))/float64(percentile(baseProc, 0.5)), "proc-p50-ratio")
	b.ReportMetric(float64(percentile(got, 0.99))/float64(percentile(baseProc, 0.99)), "proc-p99-ratio")
}

// BenchmarkWarmInvokeFrozen: a warm invocation on a sandbox frozen while
// idle (the default; each sample waits, untimed, until the kernel reports
// the cgroup frozen, so the thaw starts from a fully frozen sandbox)
// against one on a sandbox left running (KeepIdleRunning), interleaved in
// the same run. p50-overhead-µs is what freezing adds to the warm path.
func BenchmarkWarmInvokeFrozen(b *testing.B) {
	code := map[string]string{"go": goFunction(b)}
	frozenPool := benchPool(b, code)
	runningPool := benchPool(b, code, func(c *PoolConfig) { c.KeepIdleRunning = true })
	if !frozenPool.freezeIdle {
		b.Skip("no cgroup freezer on this host")
	}
	fn := goSpec("warm-echo")
	fn.MemoryMB = 1769
	payload := []byte(`{"op":"echo","value":"hello"}`)
	ctx := context.Background()
	timed := func(p *Pool) time.Duration {
		t0 := time.Now()
		res, err := p.Invoke(ctx, fn, Invocation{Payload: payload})
		d := time.Since(t0)
		if err != nil || res.FunctionError != "" || res.ColdStart {
			b.Fatalf("invoke: %v %s cold=%v", err, res.Payload, res.ColdStart)
		}
		return d
	}
	sandboxID := invoke(b, frozenPool, fn, map[string]string{}).SandboxID // cold starts outside the measurement
	invoke(b, runningPool, fn, map[string]string{})
	waitFrozen := func() {
		for {
			ok, err := frozen(frozenPool, sandboxID)
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	for range 20 {
		waitFrozen()
		timed(frozenPool)
		timed(runningPool)
	}

	got := make([]time.Duration, 0, b.N)
	base := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		waitFrozen()
		got = append(got, timed(frozenPool))
		base = append(base, timed(runningPool))
	}
	b.StopTimer()
	reportVs(b, got, base)
	b.ReportMetric(float64((percentile(got, 0.5) - percentile(base, 0.5)).Microseconds()), "p50-overhead-µs")
}

// echoServerProcess builds and starts testdata/echoserver.
func echoServerProcess(b *testing.B) (string, func()) {
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/echoserver", "./testdata/echoserver")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build echoserver: %v\n%s", err, out)
	}
	cmd := exec.Command(dir + "/echoserver")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line := make([]byte, 64)
	n, err := out.Read(line)
	if err != nil {
		b.Fatal(err)
	}
	return "http://" + strings.TrimSpace(string(line[:n])) + "/", func() { cmd.Process.Kill(); cmd.Wait() }
}

func echoServer(b *testing.B) (*http.Server, string) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + "/"
}

// BenchmarkColdStart: a new sandbox to the first response, fully isolated,
// per runtime, vs a plain fork+exec of the same bootstrap against a minimal
// Runtime API (one event, one response). Each sandbox is torn down with the
// timer stopped, and the next iteration waits for the shell pool to refill
// (cold starts that are not back to back); the "no-shell-pool" variants
// create the shell on the cold-start path.
func BenchmarkColdStart(b *testing.B) {
	py := codeDir(b, map[string]string{"app.py": "def handler(event, context):\n    return event\n"})
	js := codeDir(b, map[string]string{"index.js": "exports.handler = async (event) => event;\n"})
	code := map[string]string{"go": goFunction(b), "py": py, "js": js}
	for _, rt := range []struct{ name, runtime, handler, code string }{
		{"provided", "provided.al2023", "bootstrap", "go"},
		{"python3.11", "python3.11", "app.handler", "py"},
		{"nodejs20.x", "nodejs20.x", "index.handler", "js"},
	} {
		for _, shells := range []int{2, 0} {
			name := rt.name
			if shells == 0 {
				name += "/no-shell-pool"
			}
			b.Run(name, func(b *testing.B) {
				p := benchPool(b, code, func(c *PoolConfig) { c.ShellPoolSize = shells })
				fn := interpretedSpec("cold", rt.runtime, rt.handler)
				fn.CodeID, fn.MemoryMB = rt.code, 1769
				argv := plainCommand(b, p, rt.runtime, code[rt.code])
				var got, base []time.Duration
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					fn.Key = fmt.Sprintf("cold-%s-%d", name, i)
					waitFor(b, 30*time.Second, func() error {
						if p.shells.readyCount() < shells {
							return fmt.Errorf("shell pool refilling")
						}
						return nil
					})
					b.StartTimer()
					t0 := time.Now()
					res, err := p.Invoke(context.Background(), fn, Invocation{Payload: []byte(`{"k":"v"}`)})
					got = append(got, time.Since(t0))
					b.StopTimer()
					if err != nil || res.FunctionError != "" || !res.ColdStart {
						b.Fatalf("cold invoke: %v %s", err, res.Payload)
					}
					p.discardKey(fn.Key)
					base = append(base, plainSpawn(b, argv, code[rt.code], rt.handler))
					b.StartTimer()
				}
				b.StopTimer()
				reportVs(b, got, base)
			})
		}
	}
}

// discardKey tears down every idle sandbox of key (benchmarks only).
func (p *Pool) discardKey(key string) {
	p.mu.Lock()
	var sbs []*sandbox
	if ks := p.keys[key]; ks != nil {
		sbs = slices.Clone(ks.idleStack)
	}
	p.mu.Unlock()
	for _, sb := range sbs {
		p.discard(sb)
	}
}

func plainCommand(b *testing.B, p *Pool, runtime, codeDir string) []string {
	def, _ := lookupRuntime(runtime)
	cands, args := def.command(codeDir, p.assetsDir, "/opt")
	return append([]string{cands[0]}, args...)
}

// plainSpawn is the baseline: fork+exec the bootstrap as a plain child with
// a minimal Runtime API, and time until its first response arrives.
func plainSpawn(b *testing.B, argv []string, codeDir, handler string) time.Duration {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{}, 1)
	mux := http.NewServeMux()
	served := false
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		if served {
			<-r.Context().Done()
			return
		}
		served = true
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cold")
		w.Write([]byte(`{"k":"v"}`))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		got <- struct{}{}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = codeDir
	cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(), "_HANDLER=" + handler, "LAMBDA_TASK_ROOT=" + codeDir,
		"AWS_LAMBDA_FUNCTION_NAME=cold", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769",
		"PATH=/usr/bin:/bin"}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		b.Fatal("plain spawn never answered")
	}
	d := time.Since(t0)
	cmd.Process.Kill()
	cmd.Wait()
	return d
}

// BenchmarkIdleSandboxAgentMemory: what the agent itself spends per idle
// warm sandbox (heap, goroutine stacks, descriptors), measured over 40
// idle sandboxes. The function's own processes are in their cgroups and
// are not counted. An iteration is timed whole (a pool, 41 cold starts),
// so b.N stays 1 at the default benchtime; the figures are per sandbox.
func BenchmarkIdleSandboxAgentMemory(b *testing.B) {
	const n = 40
	for range b.N {
		p := benchPool(b, map[string]string{"go": goFunction(b)}, func(c *PoolConfig) { c.ShellPoolSize = 0 })
		invoke(b, p, goSpec("warmup"), map[string]string{}) // first-use allocations
		before := agentMemory()
		g0 := goruntime.NumGoroutine()
		fd0 := openFDs()
		for i := range n {
			fn := goSpec(fmt.Sprint("idle-", i))
			fn.MemoryMB = 128
			invoke(b, p, fn, map[string]string{})
		}
		after := agentMemory()
		perHeap := float64(after.heap-before.heap) / n
		b.ReportMetric(perHeap/1024, "heap+stack-KiB/sandbox")
		b.ReportMetric(float64(after.rss-before.rss)/n/1024, "rss-KiB/sandbox")
		b.ReportMetric(float64(goruntime.NumGoroutine()-g0)/n, "goroutines/sandbox")
		b.ReportMetric(float64(openFDs()-fd0)/n, "fds/sandbox")
		if err := p.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

type memSample struct{ heap, rss uint64 }

func agentMemory() memSample {
	goruntime.GC()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	s := memSample{heap: ms.HeapInuse + ms.StackInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				s.rss = kb << 10
			}
		}
	}
	return s
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
