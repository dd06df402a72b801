package sigv4

import (
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// This file builds the canonical request of the SigV4 specification for
// non-S3 services. Where the signers real clients use disagree, it yields
// each variant (see canonicalRequests); a signature is accepted if it
// matches any of them, and there are at most four.

// rawPath returns the request path exactly as the client escaped it on the
// wire. The server's decoded URL.Path would lose the difference between "/"
// and "%2F" and between "$" and "%24", both of which the signature covers.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	switch {
	case p == "":
		// A request built in process (tests, or a handler calling
		// another): no wire form exists, the URL's escaping is it.
		if r.URL.RawPath != "" {
			p = r.URL.RawPath
		} else {
			p = r.URL.EscapedPath()
		}
	case strings.HasPrefix(p, "/"):
		p, _, _ = strings.Cut(p, "?")
	default:
		// Absolute form ("http://host/path?q") or "*".
		if u, err := url.ParseRequestURI(p); err == nil {
			p = u.EscapedPath()
		} else {
			p = "/"
		}
	}
	if p == "" {
		p = "/"
	}
	return p
}

// normalizePath removes "." and ".." segments and empty segments (double
// slashes), keeping a leading and a trailing slash, as the specification
// asks for non-S3 services and botocore does. The Go SDK does not
// normalize, hence the second variant in canonicalRequests.
func normalizePath(p string) string {
	var out []string
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	n := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		n += "/"
	}
	return n
}

// uriEncode percent-encodes every byte except the unreserved characters of
// RFC 3986 (and '/' when keepSlash), with upper-case hex, as SigV4 requires.
// Applied to the already-escaped path it produces the double encoding non-S3
// services sign ("%3A" becomes "%253A").
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (keepSlash && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// canonicalQuery encodes every parameter, sorts by encoded name then encoded
// value (the specification sorts after encoding) and joins them. The
// presigned form leaves out X-Amz-Signature, which cannot sign itself.
func canonicalQuery(params []queryParam, presigned bool) string {
	enc := make([]queryParam, 0, len(params))
	for _, p := range params {
		if presigned && p.name == querySignature {
			continue
		}
		enc = append(enc, queryParam{uriEncode(p.name, false), uriEncode(p.value, false)})
	}
	slices.SortFunc(enc, func(a, b queryParam) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// signedHeaderValues returns the values of each named (lowercase) header,
// read once for every canonical-request variant.
func signedHeaderValues(r *http.Request, names []string) [][]string {
	// Keys Go did not canonicalize (names with characters outside the
	// token set, or set directly in process) are stored as received and
	// found by case-folding. A server-parsed request has none, so a
	// signed name the request lacks costs one map lookup, not a scan of
	// every header.
	var odd []string
	for k := range r.Header {
		if textproto.CanonicalMIMEHeaderKey(k) != k {
			odd = append(odd, k)
		}
	}
	slices.Sort(odd)
	out := make([][]string, len(names))
	for i, n := range names {
		out[i] = headerValues(r, n, odd)
	}
	return out
}

// headerValues returns the values of the named (lowercase) header in the
// order received, recovering the ones Go's server moves out of r.Header;
// odd lists, sorted, the keys of r.Header that are not in canonical form.
func headerValues(r *http.Request, name string, odd []string) []string {
	switch name {
	case "host":
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return v
		}
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
		return nil
	case "transfer-encoding":
		if v := r.Header.Values("Transfer-Encoding"); len(v) > 0 {
			return v
		}
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
		return nil
	}
	if v, ok := r.Header[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return v
	}
	var vals []string
	for _, k := range odd {
		if strings.EqualFold(k, name) {
			vals = append(vals, r.Header[k]...)
		}
	}
	return vals
}

// trimAll trims a header value and collapses runs of spaces, the
// specification's Trimall. With allSpace it collapses tabs and other ASCII
// whitespace too, as botocore does (it uses Python's str.split); the Go SDK
// collapses only spaces.
func trimAll(v string, allSpace bool) string {
	if allSpace {
		return strings.Join(strings.Fields(v), " ")
	}
	v = strings.Trim(v, " \t")
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	prevSpace := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' && prevSpace {
			continue
		}
		prevSpace = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}

// canonicalHeaders writes each name with its values (values[i] are
// names[i]'s, from signedHeaderValues).
func canonicalHeaders(names []string, values [][]string, allSpace bool) string {
	var b strings.Builder
	for i, n := range names {
		vals := values[i]
		b.WriteString(n)
		b.WriteByte(':')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimAll(v, allSpace))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// canonicalRequests returns the distinct canonical requests real signers
// could have produced for r: path normalized (specification, botocore) or
// not (Go SDK), header whitespace collapsed as the Go SDK or as botocore
// does. For ordinary requests all variants coincide and one is returned.
func canonicalRequests(r *http.Request, sr *signedRequest, payloadHash string) []string {
	raw := rawPath(r)
	paths := []string{uriEncode(normalizePath(raw), true)}
	if p := uriEncode(raw, true); p != paths[0] {
		paths = append(paths, p)
	}
	values := signedHeaderValues(r, sr.signedHeaders)
	headers := []string{canonicalHeaders(sr.signedHeaders, values, false)}
	if h := canonicalHeaders(sr.signedHeaders, values, true); h != headers[0] {
		headers = append(headers, h)
	}
	query := canonicalQuery(sr.query, sr.presigned)
	signed := strings.Join(sr.signedHeaders, ";")
	var out []string
	for _, p := range paths {
		for _, h := range headers {
			out = append(out, r.Method+"\n"+p+"\n"+query+"\n"+h+"\n"+signed+"\n"+payloadHash)
		}
	}
	return out
}
