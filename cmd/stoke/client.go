package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/stokehq/stoke/node"
)

// clientFlags are the flags every client subcommand shares: where the agent
// is and which credentials to sign with.
type clientFlags struct {
	endpoint string
	dataDir  string
	credFile string
	region   string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", envOr("STOKE_ENDPOINT", ""), "agent HTTP endpoint (default: from the credentials file, else http://127.0.0.1:9000)")
	fs.StringVar(&c.dataDir, "data-dir", envOr("STOKE_DATA_DIR", node.DefaultConfig().DataDir), "agent data dir whose credentials file to use")
	fs.StringVar(&c.credFile, "credentials", envOr("STOKE_CREDENTIALS", ""), "credentials file (default: DATA_DIR/credentials)")
	fs.StringVar(&c.region, "region", "", "region (default: from the credentials file, else local)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// resolve returns the endpoint, credentials and region the client uses.
// Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment
// win over the agent's credentials file. Endpoint: -endpoint, then
// STOKE_ENDPOINT or AWS_ENDPOINT_URL, then the credentials file, then
// http://127.0.0.1:9000.
func (c *clientFlags) resolve() (endpoint string, creds aws.Credentials, region string, err error) {
	endpoint, region = c.endpoint, c.region
	path := c.credFile
	if path == "" {
		path = filepath.Join(c.dataDir, "credentials")
	}
	fc, ferr := node.ReadCredentials(path)
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		creds = aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
	} else if ferr == nil {
		creds = aws.Credentials{AccessKeyID: fc.AccessKeyID, SecretAccessKey: fc.SecretAccessKey}
	} else {
		return "", creds, "", fmt.Errorf("no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or point -data-dir/-credentials at an agent's credentials file: %w", ferr)
	}
	for _, v := range []string{os.Getenv("AWS_ENDPOINT_URL"), fc.Endpoint, "http://127.0.0.1:9000"} {
		if endpoint == "" {
			endpoint = v
		}
	}
	for _, v := range []string{os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), fc.Region, "local"} {
		if region == "" {
			region = v
		}
	}
	return strings.TrimRight(endpoint, "/"), creds, region, nil
}

// apiError is an error response in Lambda's shape.
type apiError struct {
	Status  int
	Type    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Type, e.Status, e.Message) }

// call sends a SigV4-signed JSON request to the agent and decodes a JSON
// response into out (when out is non-nil). Errors in Lambda's shape come
// back as *apiError.
func (c *clientFlags) call(ctx context.Context, method, path string, in, out any) error {
	endpoint, creds, region, err := c.resolve()
	if err != nil {
		return err
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode, Type: resp.Header.Get("X-Amzn-ErrorType")}
		var shape struct{ Message, MessageLower string }
		var raw map[string]any
		if json.Unmarshal(data, &raw) == nil {
			for _, k := range []string{"message", "Message"} {
				if m, ok := raw[k].(string); ok {
					shape.Message = m
				}
			}
		}
		e.Message = shape.Message
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return errors.Join(fmt.Errorf("decode response of %s %s", method, path), err)
	}
	return nil
}

// lambdaClient returns an aws-sdk-go-v2 Lambda client for the agent. When
// progress is non-nil, request bodies report their upload progress to it.
func (c *clientFlags) lambdaClient(progress io.Writer) (*lambda.Client, error) {
	endpoint, creds, region, err := c.resolve()
	if err != nil {
		return nil, err
	}
	httpClient := &http.Client{Transport: http.DefaultTransport}
	if progress != nil {
		httpClient.Transport = &progressTransport{next: http.DefaultTransport, out: progress}
	}
	return lambda.New(lambda.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		HTTPClient:   httpClient,
	}), nil
}

// progressTransport draws a progress bar for request bodies over 4 MB.
type progressTransport struct {
	next http.RoundTripper
	out  io.Writer
}

const progressThreshold = 4 << 20

func (p *progressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.ContentLength > progressThreshold {
		req = req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
		req.Body = &progressReader{rc: req.Body, total: req.ContentLength, out: p.out}
	}
	return p.next.RoundTrip(req)
}

type progressReader struct {
	rc    io.ReadCloser
	total int64
	done  int64
	shown int
	ended bool
	out   io.Writer
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	r.done += int64(n)
	if r.ended {
		return n, err
	}
	// A body longer than it declared must not draw a bar past 100%
	// (strings.Repeat panics on the negative padding).
	if pct := int(min(r.done*100/r.total, 100)); pct != r.shown || errors.Is(err, io.EOF) {
		r.shown = pct
		bar := strings.Repeat("=", pct/4) + strings.Repeat(" ", 25-pct/4)
		fmt.Fprintf(r.out, "\rupload [%s] %3d%% of %.1f MB", bar, pct, float64(r.total)/(1<<20))
		if r.done >= r.total || errors.Is(err, io.EOF) {
			r.ended = true
			fmt.Fprintln(r.out)
		}
	}
	return n, err
}

func (r *progressReader) Close() error { return r.rc.Close() }
