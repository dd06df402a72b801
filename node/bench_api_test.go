package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// The API benchmarks compare a warm invoke through one node's full HTTP
// API (SigV4, resolve, admission, sandbox via the Runtime API, response)
// of an aws-lambda-go echo function at 1769 MB (one full vCPU) with a plain
// Go HTTP echo server on loopback, measured interleaved in the same run.

type apiBench struct {
	agent    *Agent
	creds    aws.Credentials
	invoke   string // URL of the function's invocations
	bare     string // URL of the bare echo server
	client   *http.Client
	payload  []byte
	shutdown func()
}

func setupAPIBench(b *testing.B) *apiBench {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("the API benchmark runs real sandboxes and needs root")
	}
	cfg := testConfig(b, b.TempDir())
	cfg.Logger = discardLogger()
	a, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for len(a.Metadata().View().AccessKeys("")) == 0 {
		if time.Now().After(deadline) {
			b.Fatal("agent did not bootstrap")
		}
		time.Sleep(20 * time.Millisecond)
	}
	creds, err := ReadCredentials(a.cfg.credentialsFile())
	if err != nil {
		b.Fatal(err)
	}
	c := sdkClient(a, creds)
	if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("echo"), Runtime: types.RuntimeProvidedal2023,
		Handler: aws.String("bootstrap"), Role: aws.String(testRole), MemorySize: aws.Int32(1769), Code: &types.FunctionCode{ZipFile: goZip(b)}}); err != nil {
		b.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	go bare.Serve(ln)

	ab := &apiBench{
		agent: a, creds: aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
		invoke: "http://" + a.HTTPAddr() + "/2015-03-31/functions/echo/invocations",
		bare:   "http://" + ln.Addr().String() + "/",
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, payload: []byte(`{"op":"echo","value":"ping"}`),
	}
	ab.shutdown = func() {
		bare.Close()
		cancel()
		<-done
	}
	// Warm the sandboxes up (one per client of the concurrent benchmark).
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				ab.do(true)
			}
		}()
	}
	wg.Wait()
	return ab
}

// do sends one request to the node (signed, as any SDK would) or to the
// bare server and returns its latency, or -1 on failure.
func (ab *apiBench) do(stoke bool) time.Duration {
	url := ab.bare
	if stoke {
		url = ab.invoke
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(ab.payload))
	start := time.Now()
	if stoke {
		sum := sha256.Sum256(ab.payload)
		if err := v4.NewSigner().SignHTTP(context.Background(), ab.creds, req, hex.EncodeToString(sum[:]), "lambda", "local", start); err != nil {
			return -1
		}
	}
	resp, err := ab.client.Do(req)
	if err != nil {
		return -1
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" || !bytes.Contains(body, []byte("ping")) {
		return -1
	}
	return d
}

// BenchmarkAPIWarmInvoke: one client, bare and Stoke requests interleaved.
// Targets: p50 ≤ 2.5× and p99 ≤ 4× the bare figures.
func BenchmarkAPIWarmInvoke(b *testing.B) {
	ab := setupAPIBench(b)
	defer ab.shutdown()
	var bare, stoke []time.Duration
	b.ResetTimer()
	for range b.N {
		d1, d2 := ab.do(false), ab.do(true)
		if d1 < 0 || d2 < 0 {
			b.Fatal("a request failed")
		}
		bare, stoke = append(bare, d1), append(stoke, d2)
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(percentile(bare, 0.5)), "bare-p50-µs")
	b.ReportMetric(us(percentile(bare, 0.99)), "bare-p99-µs")
	b.ReportMetric(us(percentile(stoke, 0.5)), "stoke-p50-µs")
	b.ReportMetric(us(percentile(stoke, 0.99)), "stoke-p99-µs")
	b.ReportMetric(float64(percentile(stoke, 0.5))/float64(percentile(bare, 0.5)), "p50-ratio")
	b.ReportMetric(float64(percentile(stoke, 0.99))/float64(percentile(bare, 0.99)), "p99-ratio")
}

// BenchmarkAPIThroughput8: 8 concurrent clients, b.N requests each to the
// bare server and then to Stoke. Target: Stoke ≥ 0.3× the bare throughput
// with zero errors.
func BenchmarkAPIThroughput8(b *testing.B) {
	ab := setupAPIBench(b)
	defer ab.shutdown()
	run := func(stoke bool) (perSec float64, errs int64) {
		var failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range b.N {
					if ab.do(stoke) < 0 {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return float64(8*b.N) / time.Since(start).Seconds(), failed.Load()
	}
	b.ResetTimer()
	bare, bareErrs := run(false)
	stoke, stokeErrs := run(true)
	b.StopTimer()
	if bareErrs+stokeErrs > 0 {
		b.Fatalf("%d bare and %d stoke requests failed", bareErrs, stokeErrs)
	}
	b.ReportMetric(bare, "bare-req/s")
	b.ReportMetric(stoke, "stoke-req/s")
	b.ReportMetric(stoke/bare, "throughput-ratio")
}
