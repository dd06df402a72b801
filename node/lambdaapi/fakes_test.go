package lambdaapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stokehq/stoke/fsm"
	"github.com/stokehq/stoke/proto/fsmpb"
)

// In-memory fakes for unit tests of the handler's logic: a real FSM applied
// in process (no Raft), a map of code, an echoing invoker.

const fakeAccount = "123456789012"

type fakeMeta struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	// stale, when set, is what View returns: a local replica lagging
	// behind the writes (see lag).
	stale atomic.Pointer[fsm.View]
}

// lag freezes View (the local replica) at the current state until the
// returned func is called; ConsistentView keeps reading the latest state.
func (m *fakeMeta) lag() (catchUp func()) {
	m.stale.Store(m.f.Store().View())
	return func() { m.stale.Store(nil) }
}

func newFakeMeta(t testing.TB) *fakeMeta {
	m := &fakeMeta{f: fsm.New()}
	if _, err := m.Apply(context.Background(), &fsmpb.CreateAccountCmd{Header: &fsmpb.Header{},
		Account: &fsmpb.Account{Id: fakeAccount, ConcurrencyLimit: 1000, UnreservedMinimum: 100, CodeStorageLimit: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *fakeMeta) Apply(_ context.Context, cmd fsm.Command) (*fsmpb.ApplyResult, error) {
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, err = fsm.Stamp(data, time.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	m.index++
	res := m.f.Apply(m.index, data)
	return res.Value, res.Err
}

func (m *fakeMeta) View() *fsm.View {
	if v := m.stale.Load(); v != nil {
		return v
	}
	return m.f.Store().View()
}
func (m *fakeMeta) ConsistentView(context.Context) (*fsm.View, error) {
	return m.f.Store().View(), nil
}

type fakeCode struct {
	mu   sync.Mutex
	zips map[string][]byte
}

func (c *fakeCode) Put(_ context.Context, _, _ string, zip []byte) (CodeInfo, error) {
	if !bytes.HasPrefix(zip, []byte("PK")) {
		return CodeInfo{}, fmt.Errorf("%w: Could not unzip uploaded file.", ErrInvalidCode)
	}
	sum := sha256.Sum256(zip)
	id := hex.EncodeToString(sum[:])
	c.mu.Lock()
	c.zips[id] = zip
	c.mu.Unlock()
	return CodeInfo{BlobID: id, CodeSha256: base64.StdEncoding.EncodeToString(sum[:]), Size: int64(len(zip))}, nil
}

func (c *fakeCode) OpenZip(_ context.Context, id string) (io.ReadCloser, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	z, ok := c.zips[id]
	if !ok {
		return nil, 0, &Error{Status: 404, Type: "ResourceNotFoundException", Message: "no such code"}
	}
	return io.NopCloser(bytes.NewReader(z)), int64(len(z)), nil
}

type echoInvoker struct{}

func (echoInvoker) Invoke(_ context.Context, req *InvokeRequest) (*InvokeResult, error) {
	return &InvokeResult{Payload: req.Payload, Node: "fake"}, nil
}

type plainSealer struct{}

func (plainSealer) Seal(p []byte, _ string) ([]byte, error) {
	return append([]byte("sealed:"), p...), nil
}
func (plainSealer) Open(s []byte, _ string) ([]byte, error) {
	return bytes.TrimPrefix(s, []byte("sealed:")), nil
}

type fixedKeys struct{ n int }

func (k *fixedKeys) NewAccountID() string { k.n++; return fmt.Sprintf("%012d", 200000000000+k.n) }
func (k *fixedKeys) NewAccessKey() (string, string) {
	k.n++
	return fmt.Sprintf("AKIAFAKE%012d", k.n), "secret"
}
func (k *fixedKeys) KeyContext(id string) string { return "key:" + id }

// fakeAuth authenticates every request as the fake account's admin.
type fakeAuth struct{}

func (fakeAuth) AuthenticateHeaders(*http.Request) (PayloadCheck, error) { return fakeAuth{}, nil }
func (fakeAuth) AuthenticateBody([]byte) (Principal, error) {
	return Principal{AccountID: fakeAccount, AccessKeyID: "AKIATEST", Admin: true}, nil
}

func newTestHandler(t testing.TB) *Handler {
	h, err := New(Config{Region: "local", Runtimes: []string{"python3.11", "nodejs20.x", "provided.al2023"},
		CodeURLKey: []byte("0123456789abcdef"), Logger: slog.New(slog.DiscardHandler)},
		Deps{Meta: newFakeMeta(t), Code: &fakeCode{zips: map[string][]byte{}}, Invoker: echoInvoker{},
			Auth: fakeAuth{}, Sealer: plainSealer{}, Keys: &fixedKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
