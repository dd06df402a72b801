package cluster

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Node-to-node security. Every gRPC call and every Raft connection between
// nodes runs over mutual TLS and carries the cluster token:
//
//   - With TLS files (--tls-ca/--tls-cert/--tls-key), the operator's CA
//     signs every node certificate and dialers check the peer's certificate
//     against the address they dialed.
//   - Without them, every node derives the same CA from the cluster key and
//     issues itself a certificate at start, so traffic is still encrypted
//     and only holders of the cluster key can take part.
//
// On top of TLS, gRPC calls carry the token (derived from the cluster key)
// as a bearer credential and Raft connections send it right after the
// handshake; a node whose cluster key differs is refused either way.
// Insecure (plaintext, no token) exists for development mode only.

// SecurityConfig configures node-to-node authentication.
type SecurityConfig struct {
	// NodeID names this node in the certificate a derived CA issues.
	NodeID string
	// CAFile, CertFile and KeyFile are PEM files from `stoke tls`: all
	// three, or none for the CA derived from DerivedCASeed.
	CAFile   string
	CertFile string
	KeyFile  string
	// DerivedCASeed (32 bytes, from the cluster key) seeds the derived CA.
	DerivedCASeed []byte
	// Token is the shared cluster token (from the cluster key).
	Token []byte
	// Insecure turns all of this off: plaintext, unauthenticated RPC and
	// Raft. Development mode only.
	Insecure bool
}

// Validate reports the first setting that cannot work.
func (c *SecurityConfig) Validate() error {
	if c.Insecure {
		return nil
	}
	files := 0
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
		if f != "" {
			files++
		}
	}
	switch {
	case files != 0 && files != 3:
		return errors.New("cluster: give all of the TLS CA, certificate and key files, or none")
	case files == 0 && len(c.DerivedCASeed) != 32:
		return errors.New("cluster: without TLS files a 32-byte DerivedCASeed is required")
	case len(c.Token) < 16:
		return errors.New("cluster: the cluster token must be at least 16 bytes")
	case c.NodeID == "":
		return errors.New("cluster: NodeID is required")
	}
	return nil
}

// Security holds the TLS configurations and token of node-to-node traffic.
type Security struct {
	insecure bool
	derived  bool
	server   *tls.Config
	client   *tls.Config
	token    string
}

// NewSecurity loads or derives the node's TLS identity.
func NewSecurity(cfg SecurityConfig) (*Security, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Insecure {
		return &Security{insecure: true}, nil
	}
	s := &Security{token: hex.EncodeToString(cfg.Token)}
	pool := x509.NewCertPool()
	var leaf tls.Certificate
	if cfg.CAFile != "" {
		caPEM, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: TLS CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("cluster: %s holds no PEM certificate", cfg.CAFile)
		}
		if leaf, err = tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("cluster: TLS certificate: %w", err)
		}
	} else {
		ca, caKey, err := derivedCA(cfg.DerivedCASeed)
		if err != nil {
			return nil, err
		}
		pool.AddCert(ca)
		if leaf, err = derivedLeaf(ca, caKey, cfg.NodeID); err != nil {
			return nil, err
		}
		s.derived = true
	}
	s.server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{leaf},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	s.client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{leaf},
		RootCAs:      pool,
	}
	return s, nil
}

// Insecure reports whether node-to-node traffic is plaintext (dev mode).
func (s *Security) Insecure() bool { return s.insecure }

// Mode describes the security mode for logs and status.
func (s *Security) Mode() string {
	switch {
	case s.insecure:
		return "insecure (development mode)"
	case s.derived:
		return "mutual TLS with a CA derived from the cluster key, plus cluster token"
	}
	return "mutual TLS with the cluster CA, plus cluster token"
}

// ServerTLS is the TLS configuration of this node's listeners (nil when
// insecure). It requires a client certificate from the cluster CA.
func (s *Security) ServerTLS() *tls.Config {
	if s.insecure {
		return nil
	}
	return s.server.Clone()
}

// ClientTLS is the TLS configuration for dialing addr (nil when insecure).
func (s *Security) ClientTLS(addr string) *tls.Config {
	if s.insecure {
		return nil
	}
	c := s.client.Clone()
	if s.derived {
		c.ServerName = derivedServerName
	} else if host, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = host
	}
	return c
}

// Token is the bearer token node-to-node calls carry ("" when insecure).
func (s *Security) Token() string { return s.token }

// CheckToken compares a presented token with the cluster's in constant time.
func (s *Security) CheckToken(got string) bool {
	if s.insecure {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// ErrUnauthenticated is returned for a peer that failed node-to-node
// authentication (bad certificate or token).
var ErrUnauthenticated = errors.New("cluster: peer not authenticated")

// handshakeTimeout bounds a TLS handshake plus token exchange.
const handshakeTimeout = 10 * time.Second

// RaftStreamLayer returns the Raft transport's stream layer over ln (which
// it owns from then on): TLS plus token when secure, plain TCP otherwise.
// advertise, when set, is the address peers dial.
func (s *Security) RaftStreamLayer(ln net.Listener, advertise string) (raft.StreamLayer, error) {
	adv := ln.Addr()
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("cluster: raft advertise address %q: %w", advertise, err)
		}
		adv = a
	}
	return &streamLayer{ln: ln, adv: adv, sec: s}, nil
}

type streamLayer struct {
	ln  net.Listener
	adv net.Addr
	sec *Security
}

func (l *streamLayer) Addr() net.Addr { return l.adv }
func (l *streamLayer) Close() error   { return l.ln.Close() }

// Accept returns connections whose handshake has not run yet: it runs on
// the first Read, in raft's per-connection goroutine, so a slow or hostile
// peer cannot stall the accept loop.
func (l *streamLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil || l.sec.insecure {
		return c, err
	}
	return &serverConn{Conn: tls.Server(c, l.sec.server), sec: l.sec}, nil
}

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if l.sec.insecure {
		return d.Dial("tcp", string(address))
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, handshakeTimeout))
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: d, Config: l.sec.ClientTLS(string(address))}).DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	if err := writeToken(conn, l.sec.token, timeout); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func writeToken(c net.Conn, token string, timeout time.Duration) error {
	_ = c.SetWriteDeadline(time.Now().Add(min(timeout, handshakeTimeout)))
	defer c.SetWriteDeadline(time.Time{})
	b := make([]byte, 0, 1+len(token))
	b = append(b, byte(len(token)))
	_, err := c.Write(append(b, token...))
	return err
}

// serverConn completes the TLS handshake and checks the token before the
// first byte reaches raft.
type serverConn struct {
	*tls.Conn
	sec  *Security
	once sync.Once
	err  error
}

func (c *serverConn) Read(p []byte) (int, error) {
	c.once.Do(func() { c.err = c.authenticate() })
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) authenticate() error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	if err := c.Handshake(); err != nil {
		c.Close()
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	var n [1]byte
	if _, err := io.ReadFull(c.Conn, n[:]); err != nil {
		c.Close()
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	tok := make([]byte, n[0])
	if _, err := io.ReadFull(c.Conn, tok); err != nil || !c.sec.CheckToken(string(tok)) {
		c.Close()
		return fmt.Errorf("%w: bad cluster token from %s", ErrUnauthenticated, c.RemoteAddr())
	}
	return nil
}
