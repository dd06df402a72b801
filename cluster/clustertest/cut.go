package clustertest

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/stokehq/stoke/cluster"
)

// CutTransport is memberlist's UDP/TCP transport with links that can be
// cut: traffic this node sends to a cut address is dropped (packets
// silently, as a real partition does; dials fail). Cutting a link on both
// nodes partitions them completely: every reply is a send too, and no
// stream can be opened. Set it as GossipConfig.Transport.
type CutTransport struct {
	*memberlist.NetTransport
	mu  sync.Mutex
	cut map[string]bool
}

// NewCutTransport binds a transport to 127.0.0.1 on a free port.
func NewCutTransport(t testing.TB) *CutTransport {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"},
		Logger: cluster.NewStdLogger(Logger(t, slog.LevelWarn).With("component", "memberlist"))})
	if err != nil {
		t.Fatal(err)
	}
	return &CutTransport{NetTransport: nt, cut: map[string]bool{}}
}

// Cut drops this node's traffic to the given gossip addresses; Heal
// restores every link.
func (c *CutTransport) Cut(addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range addrs {
		c.cut[a] = true
	}
}

func (c *CutTransport) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = map[string]bool{}
}

func (c *CutTransport) isCut(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[addr]
}

var errCut = errors.New("clustertest: link cut")

func (c *CutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return c.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (c *CutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.isCut(a.Addr) {
		return time.Now(), nil
	}
	return c.NetTransport.WriteToAddress(b, a)
}

func (c *CutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return c.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (c *CutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.isCut(a.Addr) {
		return nil, errCut
	}
	return c.NetTransport.DialAddressTimeout(a, timeout)
}

// CutConfig sets cfg to gossip over a new CutTransport and returns it.
func CutConfig(t testing.TB, cfg *cluster.GossipConfig) *CutTransport {
	ct := NewCutTransport(t)
	cfg.Transport = ct
	return ct
}
