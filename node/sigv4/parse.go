package sigv4

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm     = "AWS4-HMAC-SHA256"
	amzDateLayout = "20060102T150405Z"
	scopeEnd      = "aws4_request"

	headerAuthorization = "Authorization"
	headerAmzDate       = "X-Amz-Date"
	headerContentSHA256 = "X-Amz-Content-Sha256"
	headerSecurityToken = "X-Amz-Security-Token"

	queryAlgorithm     = "X-Amz-Algorithm"
	queryCredential    = "X-Amz-Credential"
	queryDate          = "X-Amz-Date"
	queryExpires       = "X-Amz-Expires"
	querySignedHeaders = "X-Amz-SignedHeaders"
	querySignature     = "X-Amz-Signature"
	querySecurityToken = "X-Amz-Security-Token"

	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// queryParam is one decoded name=value pair of the raw query string, in the
// order the client sent it.
type queryParam struct{ name, value string }

// signedRequest is what the client claims: the fields of the Authorization
// header or of the presigned query string.
type signedRequest struct {
	presigned     bool
	accessKeyID   string
	scope         string // date/region/service/aws4_request
	scopeDate     string
	scopeRegion   string
	scopeService  string
	signedHeaders []string // lowercase, strictly ascending, as sent
	signature     []byte   // decoded from hex
	date          time.Time
	dateRaw       string
	expires       time.Duration // presigned only
	query         []queryParam
}

// parseQuery splits a raw query string into decoded pairs. Empty pairs
// ("a=1&&b=2") are skipped and a name without '=' has an empty value, as the
// AWS SDKs do when they sign. A '+' decodes to a space (form encoding), which
// is how the Go SDK reads the query it signs.
func parseQuery(raw string) ([]queryParam, error) {
	var params []queryParam
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return nil, err
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return nil, err
		}
		params = append(params, queryParam{n, v})
	}
	return params, nil
}

// parseRequest extracts the signature fields from r, in whichever form it
// carries them.
func parseRequest(r *http.Request) (*signedRequest, *Error) {
	query, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newError(KindMalformed, "The query string is not correctly percent-encoded.")
	}
	auth := r.Header.Values(headerAuthorization)
	presigned := false
	for _, p := range query {
		if p.name == queryAlgorithm {
			presigned = true
		}
	}
	switch {
	case len(auth) > 0 && presigned:
		return nil, newError(KindMalformed, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.")
	case len(auth) > 1:
		return nil, newError(KindMalformed, "Only one Authorization header is allowed.")
	case len(auth) == 1:
		sr, e := parseAuthorization(auth[0], r.Header)
		if e != nil {
			return nil, e
		}
		sr.query = query
		return sr, nil
	case presigned:
		sr, e := parsePresigned(query)
		if e != nil {
			return nil, e
		}
		sr.query = query
		return sr, nil
	}
	return nil, newError(KindMissingAuth, msgMissingAuth)
}

func parseAuthorization(h string, header http.Header) (*signedRequest, *Error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != algorithm {
		return nil, newError(KindMalformed, "Unsupported authorization algorithm %q: only %s is accepted. Authorization=%s", truncate(alg, 64), algorithm, truncate(h, 512))
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, newError(KindMalformed, "Authorization header requires each component to be of the form key=value. Authorization=%s", truncate(h, 512))
		}
		if _, dup := fields[k]; dup {
			return nil, newError(KindMalformed, "Authorization header repeats the '%s' parameter. Authorization=%s", truncate(k, 64), truncate(h, 512))
		}
		fields[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if _, ok := fields[k]; !ok {
			missing = append(missing, "Authorization header requires '"+k+"' parameter.")
		}
	}
	dates := header.Values(headerAmzDate)
	if len(dates) == 0 {
		missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if len(missing) > 0 {
		return nil, newError(KindMalformed, "%s Authorization=%s", strings.Join(missing, " "), truncate(h, 512))
	}
	if len(dates) > 1 {
		return nil, newError(KindMalformed, "Only one X-Amz-Date header is allowed.")
	}
	sr := &signedRequest{}
	if e := sr.setCredential(fields["Credential"]); e != nil {
		return nil, e
	}
	if e := sr.setSignedHeaders(fields["SignedHeaders"]); e != nil {
		return nil, e
	}
	if e := sr.setDate(dates[0]); e != nil {
		return nil, e
	}
	if e := sr.setSignature(fields["Signature"]); e != nil {
		return nil, e
	}
	return sr, nil
}

func parsePresigned(query []queryParam) (*signedRequest, *Error) {
	vals := map[string]string{}
	for _, p := range query {
		switch p.name {
		case queryAlgorithm, queryCredential, queryDate, queryExpires, querySignedHeaders, querySignature:
			if _, dup := vals[p.name]; dup {
				return nil, newError(KindMalformed, "The query-string parameter '%s' must appear only once.", p.name)
			}
			vals[p.name] = p.value
		}
	}
	if len(vals) != 6 {
		return nil, newError(KindMalformed, "AWS query-string parameters must include '%s', '%s', '%s', '%s', '%s', '%s'. Re-examine the query-string parameters.",
			queryAlgorithm, queryCredential, querySignature, queryDate, querySignedHeaders, queryExpires)
	}
	if vals[queryAlgorithm] != algorithm {
		return nil, newError(KindMalformed, "X-Amz-Algorithm only supports \"%s\".", algorithm)
	}
	sr := &signedRequest{presigned: true}
	if e := sr.setCredential(vals[queryCredential]); e != nil {
		return nil, e
	}
	if e := sr.setSignedHeaders(vals[querySignedHeaders]); e != nil {
		return nil, e
	}
	if e := sr.setDate(vals[queryDate]); e != nil {
		return nil, e
	}
	secs, err := strconv.ParseInt(vals[queryExpires], 10, 64)
	if err != nil || secs < 1 {
		return nil, newError(KindMalformed, "X-Amz-Expires should be a number of seconds greater than 0.")
	}
	if secs > int64((1<<62)/time.Second) {
		secs = int64((1 << 62) / time.Second)
	}
	sr.expires = time.Duration(secs) * time.Second
	if e := sr.setSignature(vals[querySignature]); e != nil {
		return nil, e
	}
	return sr, nil
}

func (sr *signedRequest) setCredential(c string) *Error {
	parts := strings.Split(c, "/")
	if len(parts) != 5 || parts[0] == "" {
		return newError(KindMalformed, "Credential should be of the form <access key id>/<date>/<region>/<service>/aws4_request, not '%s'.", truncate(c, 256))
	}
	sr.accessKeyID = parts[0]
	sr.scopeDate, sr.scopeRegion, sr.scopeService = parts[1], parts[2], parts[3]
	if parts[4] != scopeEnd {
		return newError(KindWrongScope, "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'. ", truncate(parts[4], 64))
	}
	sr.scope = strings.Join(parts[1:], "/")
	return nil
}

// setSignedHeaders requires the list to be lowercase, sorted and without
// duplicates, as every signer writes it: the canonical request is built from
// this list in this order, so any other order cannot have been signed.
func (sr *signedRequest) setSignedHeaders(s string) *Error {
	names := strings.Split(s, ";")
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || (i > 0 && names[i-1] >= n) {
			return newError(KindMalformed, "SignedHeaders must be a ';'-separated list of lowercase header names in ascending order, not '%s'.", truncate(s, 256))
		}
	}
	sr.signedHeaders = names
	return nil
}

func (sr *signedRequest) setDate(d string) *Error {
	t, err := time.Parse(amzDateLayout, d)
	// time.Parse tolerates a fractional second the layout lacks; the
	// wire format does not.
	if err != nil || len(d) != len(amzDateLayout) {
		return newError(KindMalformed, "X-Amz-Date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z', not '%s'.", truncate(d, 64))
	}
	sr.date, sr.dateRaw = t, d
	return nil
}

func (sr *signedRequest) setSignature(s string) *Error {
	sig, err := hex.DecodeString(s)
	if err != nil || len(sig) != 32 {
		// A signature that cannot be ours is a plain mismatch for the
		// client: AWS answers the same way.
		return newError(KindSignatureMismatch, msgSignatureMismatch)
	}
	sr.signature = sig
	return nil
}

func (sr *signedRequest) signs(name string) bool {
	for _, n := range sr.signedHeaders {
		if n == name {
			return true
		}
	}
	return false
}

// truncate bounds client-controlled text echoed in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
