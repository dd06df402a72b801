package sigv4

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config tells a Verifier which requests it accepts.
type Config struct {
	// Service is the signing name clients put in the credential scope.
	// Lambda clients sign with "lambda".
	Service string

	// Region is the region this node answers for (for example "local");
	// a credential scoped to any other region is refused.
	Region string

	// MaxSkew is how far X-Amz-Date may lie from Now, in either direction,
	// for the Authorization header form, and how far in the future it may
	// lie for the presigned form. AWS uses 5 minutes.
	MaxSkew time.Duration

	// MaxPresignExpiry bounds X-Amz-Expires of presigned requests. AWS
	// accepts at most one week (604800 s).
	MaxPresignExpiry time.Duration

	// MaxBodyBytes is the largest body Verify and VerifyBody accept. The caller must
	// already have bounded its read (http.MaxBytesReader); this is a second
	// line that turns an unbounded caller into a refusal instead of hashing
	// an arbitrary amount of memory. Default: 70,167,211 bytes, Lambda's
	// CreateFunction request bound, the largest any operation accepts.
	MaxBodyBytes int64

	// Now is the clock. Tests replace it; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the settings AWS Lambda uses, for service "lambda"
// in region "local".
func DefaultConfig() Config {
	return Config{
		Service:          "lambda",
		Region:           "local",
		MaxSkew:          5 * time.Minute,
		MaxPresignExpiry: 7 * 24 * time.Hour,
		MaxBodyBytes:     70_167_211,
		Now:              time.Now,
	}
}

// Validate reports every field that cannot work, joined into one error.
func (c Config) Validate() error {
	var errs []error
	if c.Service == "" || strings.ContainsAny(c.Service, "/ ") {
		errs = append(errs, fmt.Errorf("sigv4: Service %q must be a non-empty signing name without '/' or spaces", c.Service))
	}
	if c.Region == "" || strings.ContainsAny(c.Region, "/ ") {
		errs = append(errs, fmt.Errorf("sigv4: Region %q must be a non-empty region name without '/' or spaces", c.Region))
	}
	if c.MaxSkew <= 0 {
		errs = append(errs, fmt.Errorf("sigv4: MaxSkew %v must be positive", c.MaxSkew))
	}
	if c.MaxPresignExpiry <= 0 {
		errs = append(errs, fmt.Errorf("sigv4: MaxPresignExpiry %v must be positive", c.MaxPresignExpiry))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("sigv4: MaxBodyBytes %d must be positive", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}
