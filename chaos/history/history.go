// Package history records what clients of a cluster under test saw: every
// operation with its arguments, its outcome and its call and return times
// on one monotonic clock. Checkers in chaos/check judge a run from these
// records alone.
package history

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"
)

// Outcome is what a client learned about an operation.
type Outcome int

const (
	// OK: the cluster acknowledged the operation.
	OK Outcome = iota
	// Fail: the cluster refused it definitively (a 4xx answer); it had no
	// effect.
	Fail
	// Unknown: the client timed out, lost its connection or got a server
	// error; the operation may or may not have taken effect, now or later.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Fail:
		return "fail"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// MarshalText makes outcomes readable in JSON dumps.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Never is the Return time of an operation whose outcome is unknown: it
// may take effect at any point after its call, so for a linearizability
// checker it stays pending for ever.
const Never = time.Duration(math.MaxInt64)

// Op is one recorded operation.
type Op struct {
	// ID is unique within a Recorder, in order of Begin.
	ID int `json:"id"`
	// Client identifies the issuing client (one sequential caller).
	Client int `json:"client"`
	// Node is the node the request was sent to.
	Node string `json:"node"`
	// Kind names the operation ("CreateFunction", "Invoke", ...).
	Kind string `json:"kind"`
	// Key is the object the operation touches (a function name); checkers
	// partition histories by it.
	Key string `json:"key"`
	// Input holds the arguments; Output what an acknowledged operation
	// returned. Their types are defined by the recording client.
	Input  any `json:"input,omitempty"`
	Output any `json:"output,omitempty"`
	// Outcome classifies the answer; Error is the error code or message
	// of a Fail or Unknown outcome.
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	// Detail is the server's message for a failed operation, for the
	// people reading a failed run's history (checkers use Error).
	Detail string `json:"detail,omitempty"`
	// Call and Return are offsets from the Recorder's start on its
	// monotonic clock. Return is when the answer arrived, also for Unknown
	// outcomes (checkers that need "pending for ever" use Never instead).
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return"`
}

// Recorder collects operations from concurrent clients. The zero value is
// not usable; call NewRecorder.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
	next  int
}

// NewRecorder starts a recorder whose clock reads zero now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the recorder's clock: time since NewRecorder, monotonic.
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Start is the wall-clock instant the recorder's clock reads zero at.
func (r *Recorder) Start() time.Time { return r.start }

// Pending is an operation that has been called but has not returned.
type Pending struct {
	r    *Recorder
	op   Op
	once sync.Once
}

// Begin records the call of an operation now. Exactly one of the Pending's
// methods OK, Fail or Unknown must follow; later calls are ignored.
func (r *Recorder) Begin(client int, node, kind, key string, input any) *Pending {
	r.mu.Lock()
	id := r.next
	r.next++
	r.mu.Unlock()
	return &Pending{r: r, op: Op{ID: id, Client: client, Node: node, Kind: kind, Key: key, Input: input, Call: r.Now()}}
}

// OK records an acknowledged operation and its output.
func (p *Pending) OK(output any) Op { return p.end(OK, output, "") }

// Fail records a definitive refusal, with the error code.
func (p *Pending) Fail(code string) Op { return p.end(Fail, nil, code) }

// Unknown records an operation whose effect is unknown.
func (p *Pending) Unknown(reason string) Op { return p.end(Unknown, nil, reason) }

// Detailed records the server's message for the failure that Fail or
// Unknown will record; call it first.
func (p *Pending) Detailed(detail string) *Pending {
	p.op.Detail = detail
	return p
}

func (p *Pending) end(o Outcome, output any, errText string) Op {
	p.once.Do(func() {
		p.op.Return = p.r.Now()
		p.op.Outcome, p.op.Output, p.op.Error = o, output, errText
		p.r.mu.Lock()
		p.r.ops = append(p.r.ops, p.op)
		p.r.mu.Unlock()
	})
	return p.op
}

// Ops returns the finished operations ordered by ID (call order).
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	out := append([]Op(nil), r.ops...)
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// WriteJSON writes ops as JSON lines, for the artifacts of a failed run.
func WriteJSON(w io.Writer, ops []Op) error {
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return nil
}

// Filter returns the ops for which keep is true.
func Filter(ops []Op, keep func(Op) bool) []Op {
	var out []Op
	for _, op := range ops {
		if keep(op) {
			out = append(out, op)
		}
	}
	return out
}

// ReadJSON reads ops written by WriteJSON, decoding Input and Output into
// the types of their kind (ControlInput, InvokeInput, ...), so a saved
// history can be checked again.
func ReadJSON(r io.Reader) ([]Op, error) {
	dec := json.NewDecoder(r)
	var ops []Op
	for dec.More() {
		var raw struct {
			Op
			Input   json.RawMessage `json:"input"`
			Output  json.RawMessage `json:"output"`
			Outcome string          `json:"outcome"`
		}
		if err := dec.Decode(&raw); err != nil {
			return ops, err
		}
		op := raw.Op
		switch raw.Outcome {
		case "ok":
			op.Outcome = OK
		case "fail":
			op.Outcome = Fail
		case "unknown":
			op.Outcome = Unknown
		default:
			return ops, fmt.Errorf("history: op %d has outcome %q", op.ID, raw.Outcome)
		}
		var err error
		switch op.Kind {
		case Invoke, InvokeAsync:
			op.Input, err = decodeAs[InvokeInput](raw.Input)
			if err == nil && op.Outcome == OK {
				op.Output, err = decodeAs[InvokeOutput](raw.Output)
			}
		default:
			op.Input, err = decodeAs[ControlInput](raw.Input)
			if err == nil && op.Outcome == OK {
				op.Output, err = decodeAs[ControlOutput](raw.Output)
			}
		}
		if err != nil {
			return ops, fmt.Errorf("history: op %d: %w", op.ID, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func decodeAs[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 || string(raw) == "null" {
		return v, nil
	}
	err := json.Unmarshal(raw, &v)
	return v, err
}
