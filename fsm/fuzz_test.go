package fsm

import (
	"bytes"
	"testing"

	"github.com/stokehq/stoke/proto/fsmpb"
)

func seedEntries(f *testing.F) {
	for _, cmd := range []Command{
		accountCmd(testAccount),
		createFn("fn", true),
		&fsmpb.UpdateFunctionConfigCmd{Header: hdr(testAccount), Name: "fn", Fields: []string{"memory_mb", "environment"}, Config: &fsmpb.FunctionConfig{MemoryMb: 512}},
		&fsmpb.CreateAliasCmd{Header: hdr(testAccount), Alias: &fsmpb.Alias{FunctionName: "fn", Name: "live", FunctionVersion: "1", AdditionalVersionWeights: map[string]float64{"1": 2}}},
		&fsmpb.DeleteFunctionCmd{Header: hdr(testAccount), Name: "fn", Version: 1},
		enqueue("e1", "e2"),
		update(deadLetter("e1")),
	} {
		b, err := Encode(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x7F})
	f.Add([]byte{byte(CmdCreateFunction), 0xFF, 0xFF})
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to an entry that decodes to the same command.
func FuzzDecode(f *testing.F) {
	seedEntries(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, cmd, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(cmd)
		if err != nil {
			t.Fatalf("re-encode of a decoded %s: %v", typ, err)
		}
		typ2, cmd2, err := Decode(again)
		if err != nil || typ2 != typ || !bytes.Equal(mustEncode(t, cmd2), again) {
			t.Fatalf("round trip changed the command: %v", err)
		}
	})
}

// FuzzApply: any entry that passes Validate (the proposer's gate) applies
// without panicking, on a replica that already holds some state, and the
// replica stays snapshot-consistent.
func FuzzApply(f *testing.F) {
	seedEntries(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if Validate(data) != nil {
			return
		}
		r := newReplica()
		r.must(t, accountCmd(testAccount))
		r.must(t, createFn("fn", true))
		r.index++
		r.f.Apply(r.index, data)
		snapshotRoundTrip(t, r)
	})
}
