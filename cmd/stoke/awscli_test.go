package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stokehq/stoke/cluster/clustertest"
	"github.com/stokehq/stoke/node"
)

// startDevAgent runs a single dev-mode agent in dir until the test ends.
func startDevAgent(t *testing.T, dir string) *node.Agent {
	t.Helper()
	return startDevAgentWith(t, dir, nil)
}

// startDevAgentWith is startDevAgent with a hook to adjust the config.
func startDevAgentWith(t *testing.T, dir string, adjust func(*node.Config)) *node.Agent {
	t.Helper()
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr, cfg.RaftAddr = port(), port()
	cfg.Cluster.GossipAddr, cfg.Cluster.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Bootstrap, cfg.Dev = true, true
	cfg.RaftHeartbeatTimeout, cfg.RaftElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
	cfg.Logger = clustertest.Logger(t, slog.LevelWarn)
	cfg.Worker.InsecureNoSandbox = os.Geteuid() != 0
	if adjust != nil {
		adjust(&cfg)
	}
	a, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	clustertest.WaitFor(t, 15*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(dir, "credentials")); err != nil {
			return err
		}
		resp, err := http.Get("http://" + a.HTTPAddr() + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		// The first leader writes the admin key to the file before it
		// commits it: the file is usable once a request signed with it
		// is accepted.
		cr, err := node.ReadCredentials(filepath.Join(dir, "credentials"))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return signedGet(ctx, "http://"+a.HTTPAddr()+"/stoke/v1/status", cr)
	})
	return a
}

// signedGet sends a GET signed with cr and fails unless it is answered 200.
func signedGet(ctx context.Context, url string, cr node.Credentials) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey},
		req, hex.EncodeToString(empty[:]), "lambda", cr.Region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("signed GET %s: %d", url, resp.StatusCode)
	}
	return nil
}

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func() error) string {
	t.Helper()
	out, err := tryStdout(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryStdout runs f and returns what it printed and its error.
func tryStdout(f func() error) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	old := os.Stdout
	os.Stdout = w
	outc := make(chan []byte, 1)
	go func() {
		out, _ := io.ReadAll(r)
		outc <- out
	}()
	ferr := f()
	os.Stdout = old
	w.Close()
	return string(<-outc), ferr
}

func pyZip(t *testing.T, body string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("app.py")
	io.WriteString(w, body)
	zw.Close()
	path := filepath.Join(t.TempDir(), "fn.zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAWSCLILifecycle drives a node with the real AWS CLI (v2 from Debian's
// awscli at /usr/bin/aws, and v1 from pip when present), configured only
// with the profile `stoke credentials` prints.
func TestAWSCLILifecycle(t *testing.T) {
	clis := map[string]string{}
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		clis["v2"] = "/usr/bin/aws"
	}
	for _, p := range []string{"/root/.pyenv/shims/aws", "/usr/local/bin/aws"} {
		if out, err := exec.Command(p, "--version").CombinedOutput(); err == nil && strings.HasPrefix(string(out), "aws-cli/1.") {
			clis["v1"] = p
			break
		}
	}
	if clis["v2"] == "" {
		t.Skip("AWS CLI v2 not installed at /usr/bin/aws (.ci/run installs Debian's awscli)")
	}
	if clis["v1"] == "" {
		t.Log("AWS CLI v1 (pip) not found; testing v2 only")
	}
	dir := t.TempDir()
	a := startDevAgent(t, dir)

	profile := captureStdout(t, func() error { return runCredentials([]string{"-data-dir", dir}) })
	if !strings.Contains(profile, "[stoke]") || !strings.Contains(profile, "aws_access_key_id") {
		t.Fatalf("stoke credentials printed:\n%s", profile)
	}
	awsDir := t.TempDir()
	credFile := filepath.Join(awsDir, "credentials")
	if err := os.WriteFile(credFile, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(awsDir, "config")
	os.WriteFile(cfgFile, []byte("[profile stoke]\nregion = local\noutput = json\n"), 0o600)
	endpoint := "http://" + a.HTTPAddr()

	for ver, bin := range clis {
		t.Run(ver, func(t *testing.T) {
			fn := "cli-" + ver
			run := func(args ...string) map[string]any {
				t.Helper()
				args = append(args, "--profile", "stoke", "--endpoint-url", endpoint, "--output", "json")
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+credFile, "AWS_CONFIG_FILE="+cfgFile,
					"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_PAGER=")
				cmd.Dir = t.TempDir()
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				var m map[string]any
				if len(bytes.TrimSpace(out)) > 0 {
					if err := json.Unmarshal(out, &m); err != nil {
						t.Fatalf("aws %s: output %q: %v", args[1], out, err)
					}
				}
				return m
			}
			zip1 := pyZip(t, "def handler(e, c):\n    return {'v': 1, 'name': e.get('name')}\n")
			created := run("lambda", "create-function", "--function-name", fn, "--runtime", "python3.11", "--handler", "app.handler",
				"--role", "arn:aws:iam::123456789012:role/x", "--zip-file", "fileb://"+zip1)
			if created["FunctionName"] != fn || created["State"] != "Active" {
				t.Fatalf("create-function: %v", created)
			}
			outFile := filepath.Join(t.TempDir(), "out.json")
			invokeArgs := []string{"lambda", "invoke", "--function-name", fn, "--payload", `{"name":"cli"}`}
			if ver == "v2" {
				invokeArgs = append(invokeArgs, "--cli-binary-format", "raw-in-base64-out")
			}
			inv := run(append(invokeArgs, outFile)...)
			if inv["StatusCode"] != 200.0 {
				t.Fatalf("invoke: %v", inv)
			}
			if body, _ := os.ReadFile(outFile); string(body) != `{"v": 1, "name": "cli"}` {
				t.Fatalf("invoke result %q", body)
			}
			run("lambda", "update-function-configuration", "--function-name", fn, "--memory-size", "256")
			run("lambda", "publish-version", "--function-name", fn)
			zip2 := pyZip(t, "def handler(e, c):\n    return {'v': 2}\n")
			run("lambda", "update-function-code", "--function-name", fn, "--zip-file", "fileb://"+zip2)
			if v := run("lambda", "publish-version", "--function-name", fn); v["Version"] != "2" {
				t.Fatalf("publish-version: %v", v)
			}
			run("lambda", "create-alias", "--function-name", fn, "--name", "live", "--function-version", "1")
			inv = run(append(append([]string{}, invokeArgs...), "--qualifier", "live", outFile)...)
			if body, _ := os.ReadFile(outFile); inv["ExecutedVersion"] != "1" || !strings.Contains(string(body), `"v": 1`) {
				t.Fatalf("invoke via alias: %v %s", inv, body)
			}
			run("lambda", "update-alias", "--function-name", fn, "--name", "live", "--function-version", "2")
			got := run("lambda", "get-function", "--function-name", fn, "--qualifier", "live")
			if cfg, _ := got["Configuration"].(map[string]any); cfg["Version"] != "2" || cfg["MemorySize"] != 256.0 {
				t.Fatalf("get-function via alias: %v", got["Configuration"])
			}
			list := run("lambda", "list-functions")
			if fns, _ := list["Functions"].([]any); len(fns) == 0 {
				t.Fatalf("list-functions: %v", list)
			}
			run("lambda", "delete-alias", "--function-name", fn, "--name", "live")
			run("lambda", "delete-function", "--function-name", fn)
			cmd := exec.Command(bin, "lambda", "get-function", "--function-name", fn, "--profile", "stoke", "--endpoint-url", endpoint)
			cmd.Env = append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+credFile, "AWS_CONFIG_FILE="+cfgFile)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "ResourceNotFoundException") {
				t.Fatalf("get deleted function: %v\n%s", err, out)
			}
		})
	}
}
