package node

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node/codepkg/codepkgtest"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// codeCluster is a testCluster of servers with sandboxes and the Lambda
// API open (--no-auth), tuned so that repair and collection run fast.
type codeCluster struct {
	*testCluster
	ids []string
}

func newCodeCluster(t *testing.T, n int, tune func(*Config)) *codeCluster {
	t.Helper()
	c := &codeCluster{testCluster: newTestCluster(t)}
	var seed string
	for i := range n {
		id := fmt.Sprintf("c%d", i+1)
		cfg := c.clusterConfig(id, true)
		if seed != "" {
			cfg.Cluster.Join = []string{seed}
		}
		cfg.Cluster.BootstrapExpect = n
		cfg.NoAuth = true
		cfg.Worker.MemoryBudgetMB = 4096
		cfg.Code.RepairInterval = 200 * time.Millisecond
		if tune != nil {
			tune(&cfg)
		}
		a := c.start(cfg)
		if seed == "" {
			seed = a.GossipAddr()
		}
		c.ids = append(c.ids, id)
	}
	clustertest.WaitFor(t, 30*time.Second, func() error {
		for _, a := range c.live() {
			if len(a.Metadata().View().Nodes()) != n || len(a.Metadata().View().AccessKeys("")) == 0 {
				return fmt.Errorf("%s: %d node records, admin key %v", a.NodeID(), len(a.Metadata().View().Nodes()), len(a.Metadata().View().AccessKeys("")) > 0)
			}
			for _, id := range c.ids {
				if !a.Gossip().IsAlive(id) {
					return fmt.Errorf("%s does not see %s alive", a.NodeID(), id)
				}
			}
		}
		return nil
	})
	return c
}

// preferred returns the first n live nodes of a function's code
// placement, as the agents compute it.
func (c *codeCluster) preferred(t *testing.T, fn string, n int) []string {
	t.Helper()
	a := c.live()[0]
	v := a.Metadata().View()
	return a.code.ring.get(v).Preferred(codePlacementKey(adminAccount(a), fn), n, a.code.live)
}

// waitFunction waits until every running node's replica holds function
// name (the invoke path reads the local replica).
func (c *codeCluster) waitFunction(t *testing.T, name string) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, func() error {
		for _, a := range c.live() {
			if a.Metadata().View().Function(adminAccount(a), name) == nil {
				return fmt.Errorf("%s does not see %s yet", a.NodeID(), name)
			}
		}
		return nil
	})
}

// holders returns the running nodes that hold a complete copy of id.
func (c *codeCluster) holders(id string) []string {
	var out []string
	for _, a := range c.live() {
		if a.Blobs().HasZip(id) {
			out = append(out, a.NodeID())
		}
	}
	return out
}

type apiError struct {
	Status int
	Type   string
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Body) }

// call sends one Lambda API request and decodes a JSON answer into out.
func call(ctx context.Context, a *Agent, method, path string, in, out any) error {
	var body io.Reader
	if raw, ok := in.(json.RawMessage); ok {
		body = bytes.NewReader(raw)
	} else if in != nil {
		js, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.HTTPAddr()+path, body)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &apiError{Status: resp.StatusCode, Type: resp.Header.Get("X-Amzn-ErrorType"), Body: string(raw)}
	}
	if fe := resp.Header.Get("X-Amz-Function-Error"); fe != "" {
		return fmt.Errorf("function error %s: %s", fe, raw)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func createPython(ctx context.Context, a *Agent, name string, zip []byte) error {
	// The body is assembled by hand: encoding/json is slow on 40 MB
	// under the race detector.
	body := json.RawMessage(`{"FunctionName":"` + name + `","Runtime":"python3.11","Handler":"app.handler","Timeout":30,` +
		`"Role":"arn:aws:iam::123456789012:role/test","Code":{"ZipFile":"` + base64.StdEncoding.EncodeToString(zip) + `"}}`)
	return call(ctx, a, "POST", "/2015-03-31/functions", body, nil)
}

// handlerResult is what codepkgtest.PythonHandler answers.
type handlerResult struct {
	Files int            `json:"files"`
	Echo  map[string]any `json:"echo"`
}

func invokeFiles(ctx context.Context, a *Agent, name string) (int, error) {
	var out handlerResult
	err := call(ctx, a, "POST", "/2015-03-31/functions/"+name+"/invocations", map[string]any{"from": a.NodeID()}, &out)
	if err == nil && out.Echo["from"] != a.NodeID() {
		err = fmt.Errorf("echo %v", out.Echo)
	}
	return out.Files, err
}

// invokeFilesHere runs the function on a's own sandbox pool, bypassing
// routing, and returns how many files the function saw.
func invokeFilesHere(ctx context.Context, t *testing.T, a *Agent, name string) (int, error) {
	payload, _ := json.Marshal(map[string]any{"from": a.NodeID()})
	res, ref, err := a.local.run(ctx, invokeRequest(t, a, adminAccount(a), name, payload), rpcpb.InvokeMode_INVOKE_MODE_QUEUE)
	switch {
	case err != nil:
		return 0, err
	case ref.refused():
		return 0, fmt.Errorf("refused: %s", ref.message)
	case res.FunctionError != "":
		return 0, fmt.Errorf("function error: %s", res.Payload)
	}
	var out handlerResult
	if err := json.Unmarshal(res.Payload, &out); err != nil {
		return 0, err
	}
	return out.Files, nil
}

// blobOf returns the blob id of a function's $LATEST code.
func blobOf(t *testing.T, a *Agent, name string) string {
	t.Helper()
	fn := a.Metadata().View().Function(adminAccount(a), name)
	if fn == nil {
		t.Fatalf("%s has no function %s", a.NodeID(), name)
	}
	return fn.Config.BlobId
}

// download fetches GetFunction's Code.Location through a.
func download(ctx context.Context, t *testing.T, a *Agent, name string) []byte {
	t.Helper()
	var got struct {
		Code struct{ Location string }
	}
	if err := call(ctx, a, "GET", "/2015-03-31/functions/"+name, nil, &got); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got.Code.Location)
	if err != nil || !strings.HasPrefix(u.Path, "/stoke/v1/code/") {
		t.Fatalf("Code.Location %q", got.Code.Location)
	}
	resp, err := http.Get(got.Code.Location)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %d %v %s", resp.StatusCode, err, b[:min(len(b), 200)])
	}
	return b
}

// pythonFunction is a deployable zip: the handler, a Python dependency
// tree at scale, a file that makes the package (and its blob) unique to
// seed, and weightBytes of incompressible data (a model). It returns the
// zip and the number of files the handler should count.
func pythonFunction(t *testing.T, seed string, scale float64, weightBytes int) ([]byte, int) {
	t.Helper()
	ents := append([]codepkgtest.Entry{codepkgtest.File("app.py", codepkgtest.PythonHandler), codepkgtest.File("seed.txt", seed)},
		codepkgtest.PythonDeps(scale)...)
	if weightBytes > 0 {
		ents = append(ents, codepkgtest.Weights("model/weights.bin", weightBytes, uint64(len(seed))))
	}
	files := 0
	for _, e := range ents {
		if e.Mode&codepkgtest.ModeDir != codepkgtest.ModeDir {
			files++
		}
	}
	z, err := codepkgtest.Zip(ents...)
	if err != nil {
		t.Fatal(err)
	}
	return z, files
}

// badArchives are zips Convert refuses, one per kind of attack.
func badArchives(t *testing.T) map[string][]byte {
	t.Helper()
	mk := func(ents ...codepkgtest.Entry) []byte {
		z, err := codepkgtest.Zip(append([]codepkgtest.Entry{codepkgtest.File("app.py", codepkgtest.PythonHandler)}, ents...)...)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	return map[string][]byte{
		"traversal":     mk(codepkgtest.File("../../etc/cron.d/evil", "* * * * * root sh")),
		"symlink":       mk(codepkgtest.Link("passwd", "../../../../etc/passwd")),
		"bomb":          mk(codepkgtest.File("zeros.bin", strings.Repeat("\x00", 16<<20))),
		"lying header":  lyingZip(t),
		"not a zip":     []byte("PK\x03\x04 this is not really a zip"),
		"absolute path": mk(codepkgtest.File("/etc/passwd", "root::0:0::/:/bin/sh")),
	}
}

// lyingZip holds an entry whose header declares 100 bytes while its data
// inflates to 1 MiB.
func lyingZip(t *testing.T) []byte {
	t.Helper()
	real := make([]byte, 1<<20)
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write(real)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "small.txt", Method: zip.Deflate, Modified: codepkgtest.ZipTime,
		CRC32: crc32.ChecksumIEEE(real[:100]), CompressedSize64: uint64(comp.Len()), UncompressedSize64: 100}
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	return buf.Bytes()
}

// allBlobs lists the blobs on every running node.
func (c *codeCluster) allBlobs() map[string][]string {
	out := map[string][]string{}
	for _, a := range c.live() {
		ids, _ := a.Blobs().List()
		out[a.NodeID()] = ids
	}
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
