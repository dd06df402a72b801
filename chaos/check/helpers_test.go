package check

import (
	"time"

	"github.com/stokehq/stoke/chaos/history"
)

// hb builds hand-written histories: each call appends one op with the
// given interval (in milliseconds) and returns the builder.
type hb struct{ ops []history.Op }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func (b *hb) add(client int, kind, key string, in history.ControlInput, outcome history.Outcome, out history.ControlOutput, errCode string, call, ret int) *hb {
	op := history.Op{ID: len(b.ops), Client: client, Node: "n1", Kind: kind, Key: key, Input: in,
		Outcome: outcome, Error: errCode, Call: ms(call), Return: ms(ret)}
	if outcome == history.OK {
		op.Output = out
	}
	b.ops = append(b.ops, op)
	return b
}

// ok, fail and unknown add writes; read adds an acknowledged read.
func (b *hb) ok(client int, kind, key string, in history.ControlInput, out history.ControlOutput, call, ret int) *hb {
	return b.add(client, kind, key, in, history.OK, out, "", call, ret)
}

func (b *hb) fail(client int, kind, key string, in history.ControlInput, code string, call, ret int) *hb {
	return b.add(client, kind, key, in, history.Fail, history.ControlOutput{}, code, call, ret)
}

func (b *hb) unknown(client int, kind, key string, in history.ControlInput, call, ret int) *hb {
	return b.add(client, kind, key, in, history.Unknown, history.ControlOutput{}, "timeout", call, ret)
}

func desc(d string) history.ControlInput { return history.ControlInput{Description: d} }
func got(d string) history.ControlOutput { return history.ControlOutput{Description: d} }
func ver(v string) history.ControlOutput { return history.ControlOutput{Version: v} }

// pub is a publish's answer: the version and its description.
func pub(v, d string) history.ControlOutput { return history.ControlOutput{Version: v, Description: d} }

var none = history.ControlInput{}
