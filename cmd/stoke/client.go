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

// resolve returns the endpoint, credentials and region the client uses:
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment win,
// otherwise the agent's credentials file.
func (c *clientFlags) resolve() (endpoint string, creds aws.Credentials, region string, err error) {
	endpoint, region = c.endpoint, c.region
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		creds = aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
		if region == "" {
			region = os.Getenv("AWS_REGION")
		}
	} else {
		path := c.credFile
		if path == "" {
			path = filepath.Join(c.dataDir, "credentials")
		}
		fc, ferr := node.ReadCredentials(path)
		if ferr != nil {
			return "", creds, "", fmt.Errorf("no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or point -data-dir/-credentials at an agent's credentials file: %w", ferr)
		}
		creds = aws.Credentials{AccessKeyID: fc.AccessKeyID, SecretAccessKey: fc.SecretAccessKey}
		if region == "" {
			region = fc.Region
		}
		if endpoint == "" {
			endpoint = fc.Endpoint
		}
	}
	if endpoint == "" {
		endpoint = "http://127.0.0.1:9000"
	}
	if region == "" {
		region = "local"
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
