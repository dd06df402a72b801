package httpguard

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// refusalLogEvery spaces the warnings about refused connections: an attack
// refuses thousands a second, and the log must not become its amplifier.
const refusalLogEvery = time.Minute

// Listener is a net.Listener that holds at most Config.MaxConns
// connections, and at most Config.MaxConnsPerAddr from one IP address.
// Accept closes a connection past either bound at once and waits for the
// next, so the excess never reaches the server. Safe for concurrent use.
type Listener struct {
	net.Listener
	maxConns, maxPerAddr int

	log                 *slog.Logger
	mu                  sync.Mutex
	open                int
	perAddr             map[string]int
	refused             int64
	lastLog             time.Time
	refusedSinceLastLog int64
}

// NewListener wraps ln with cfg's connection bounds (MaxConns,
// MaxConnsPerAddr); cfg must be valid. Refusals are logged to log at most
// once a minute.
func NewListener(ln net.Listener, cfg Config, log *slog.Logger) *Listener {
	return &Listener{Listener: ln, maxConns: cfg.MaxConns, maxPerAddr: cfg.MaxConnsPerAddr, perAddr: map[string]int{}, log: log}
}

// Accept returns the next connection within the bounds.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOf(c.RemoteAddr())
		if l.admit(addr) {
			return &conn{Conn: c, l: l, addr: addr}, nil
		}
		// Closed before the server sees it: no goroutine, no buffer.
		c.Close()
	}
}

func (l *Listener) admit(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.maxConns || l.perAddr[addr] >= l.maxPerAddr {
		l.refused++
		l.refusedSinceLastLog++
		if now := time.Now(); now.Sub(l.lastLog) >= refusalLogEvery {
			l.log.Warn("refusing connections past the API's bounds", "refused", l.refusedSinceLastLog, "last_addr", addr,
				"open", l.open, "open_from_addr", l.perAddr[addr], "max_conns", l.maxConns, "max_conns_per_addr", l.maxPerAddr)
			l.lastLog, l.refusedSinceLastLog = now, 0
		}
		return false
	}
	l.open++
	l.perAddr[addr]++
	return true
}

func (l *Listener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perAddr[addr]--; l.perAddr[addr] == 0 {
		delete(l.perAddr, addr)
	}
}

// Stats reports the connections held now, those held from addr (an IP
// address), and how many were refused since the start.
func (l *Listener) Stats(addr string) (open, fromAddr int, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.perAddr[addr], l.refused
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, when closed.
type conn struct {
	net.Conn
	l    *Listener
	addr string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
