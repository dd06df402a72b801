package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stokehq/stoke/proto/fsmpb"
)

// CommandType is the first byte of every Raft log entry. Values are
// append-only: never renumber, never reuse a retired value.
//
// Types with the IgnorableFlag bit set may be skipped by a replica that does
// not know them (an older binary during a rolling upgrade); any other unknown
// type halts Apply, because silently skipping a state change would let the
// replicas diverge.
type CommandType uint8

const (
	CmdCreateAccount CommandType = iota + 1
	CmdCreateAccessKey
	CmdSetAccessKeyStatus
	CmdCreateFunction
	CmdUpdateFunctionCode
	CmdUpdateFunctionConfig
	CmdDeleteFunction
	CmdPublishVersion
	CmdCreateAlias
	CmdUpdateAlias
	CmdDeleteAlias
	CmdPutFunctionConcurrency
	CmdDeleteFunctionConcurrency
	CmdTagResource
	CmdUntagResource
	CmdUpsertNode
	CmdRemoveNode
	CmdUpdateAccount
)

// Asynchronous invocation (apply_async.go) owns types 50-59.
const (
	CmdPutEventInvokeConfig    CommandType = 50
	CmdDeleteEventInvokeConfig CommandType = 51
	CmdAsyncEnqueue            CommandType = 52
	CmdAsyncUpdate             CommandType = 53
	CmdAsyncRedrive            CommandType = 54
	CmdAsyncPurge              CommandType = 55
)

// Command types 30-39 belong to placement (issue 6).
const (
	CmdPutProvisionedConcurrency       CommandType = 30
	CmdDeleteProvisionedConcurrency    CommandType = 31
	CmdSetProvisionedConcurrencyStatus CommandType = 32
	CmdSetLeaseCeiling                 CommandType = 33
)

// IgnorableFlag marks a command type that replicas may skip when unknown.
const IgnorableFlag CommandType = 0x80

// ErrUnknownCommand is returned for a command type this binary does not know
// and may not ignore. Proposers see it from Encode/Validate before anything
// reaches the log.
var ErrUnknownCommand = errors.New("fsm: unknown command type")

// ErrMalformedCommand is returned for an entry whose payload does not decode.
var ErrMalformedCommand = errors.New("fsm: malformed command")

type commandInfo struct {
	name string
	new  func() Command
}

var commands = map[CommandType]commandInfo{
	CmdCreateAccount:             {"CreateAccount", func() Command { return &fsmpb.CreateAccountCmd{} }},
	CmdCreateAccessKey:           {"CreateAccessKey", func() Command { return &fsmpb.CreateAccessKeyCmd{} }},
	CmdSetAccessKeyStatus:        {"SetAccessKeyStatus", func() Command { return &fsmpb.SetAccessKeyStatusCmd{} }},
	CmdCreateFunction:            {"CreateFunction", func() Command { return &fsmpb.CreateFunctionCmd{} }},
	CmdUpdateFunctionCode:        {"UpdateFunctionCode", func() Command { return &fsmpb.UpdateFunctionCodeCmd{} }},
	CmdUpdateFunctionConfig:      {"UpdateFunctionConfig", func() Command { return &fsmpb.UpdateFunctionConfigCmd{} }},
	CmdDeleteFunction:            {"DeleteFunction", func() Command { return &fsmpb.DeleteFunctionCmd{} }},
	CmdPublishVersion:            {"PublishVersion", func() Command { return &fsmpb.PublishVersionCmd{} }},
	CmdCreateAlias:               {"CreateAlias", func() Command { return &fsmpb.CreateAliasCmd{} }},
	CmdUpdateAlias:               {"UpdateAlias", func() Command { return &fsmpb.UpdateAliasCmd{} }},
	CmdDeleteAlias:               {"DeleteAlias", func() Command { return &fsmpb.DeleteAliasCmd{} }},
	CmdPutFunctionConcurrency:    {"PutFunctionConcurrency", func() Command { return &fsmpb.PutFunctionConcurrencyCmd{} }},
	CmdDeleteFunctionConcurrency: {"DeleteFunctionConcurrency", func() Command { return &fsmpb.DeleteFunctionConcurrencyCmd{} }},
	CmdTagResource:               {"TagResource", func() Command { return &fsmpb.TagResourceCmd{} }},
	CmdUntagResource:             {"UntagResource", func() Command { return &fsmpb.UntagResourceCmd{} }},
	CmdUpsertNode:                {"UpsertNode", func() Command { return &fsmpb.UpsertNodeCmd{} }},
	CmdRemoveNode:                {"RemoveNode", func() Command { return &fsmpb.RemoveNodeCmd{} }},
	CmdUpdateAccount:             {"UpdateAccount", func() Command { return &fsmpb.UpdateAccountCmd{} }},

	CmdPutEventInvokeConfig:      {"PutEventInvokeConfig", func() Command { return &fsmpb.PutEventInvokeConfigCmd{} }},
	CmdDeleteEventInvokeConfig:   {"DeleteEventInvokeConfig", func() Command { return &fsmpb.DeleteEventInvokeConfigCmd{} }},
	CmdAsyncEnqueue:              {"AsyncEnqueue", func() Command { return &fsmpb.AsyncEnqueueCmd{} }},
	CmdAsyncUpdate:               {"AsyncUpdate", func() Command { return &fsmpb.AsyncUpdateCmd{} }},
	CmdAsyncRedrive:              {"AsyncRedrive", func() Command { return &fsmpb.AsyncRedriveCmd{} }},
	CmdAsyncPurge:                {"AsyncPurge", func() Command { return &fsmpb.AsyncPurgeCmd{} }},
	CmdPutBlob:                   {"PutBlob", func() Command { return &fsmpb.PutBlobCmd{} }},
	CmdUpdateBlobReplicas:        {"UpdateBlobReplicas", func() Command { return &fsmpb.UpdateBlobReplicasCmd{} }},
	CmdCollectBlobs:              {"CollectBlobs", func() Command { return &fsmpb.CollectBlobsCmd{} }},
	CmdPutProvisionedConcurrency: {"PutProvisionedConcurrency", func() Command { return &fsmpb.PutProvisionedConcurrencyCmd{} }},
	CmdDeleteProvisionedConcurrency: {"DeleteProvisionedConcurrency", func() Command {
		return &fsmpb.DeleteProvisionedConcurrencyCmd{}
	}},
	CmdSetProvisionedConcurrencyStatus: {"SetProvisionedConcurrencyStatus", func() Command {
		return &fsmpb.SetProvisionedConcurrencyStatusCmd{}
	}},
	CmdSetLeaseCeiling: {"SetLeaseCeiling", func() Command { return &fsmpb.SetLeaseCeilingCmd{} }},
}

func (t CommandType) String() string {
	if info, ok := commands[t]; ok {
		return info.name
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// Known reports whether this binary can apply commands of type t.
func (t CommandType) Known() bool {
	_, ok := commands[t]
	return ok
}

// Ignorable reports whether a replica that does not know t may skip it.
func (t CommandType) Ignorable() bool { return t&IgnorableFlag != 0 }

// Command is a protobuf command message. Every command carries a Header.
type Command interface {
	proto.Message
	GetHeader() *fsmpb.Header
}

var typesByMessage = func() map[protoreflect.FullName]CommandType {
	m := make(map[protoreflect.FullName]CommandType, len(commands))
	for t, info := range commands {
		m[info.new().ProtoReflect().Descriptor().FullName()] = t
	}
	return m
}()

// TypeOf returns the command type of cmd, or ErrUnknownCommand.
func TypeOf(cmd Command) (CommandType, error) {
	name := cmd.ProtoReflect().Descriptor().FullName()
	if t, ok := typesByMessage[name]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("%w: %s", ErrUnknownCommand, name)
}

// Encode returns the log entry for cmd: one type byte, then the payload.
// Encoding is deterministic so that equal commands produce equal entries.
func Encode(cmd Command) ([]byte, error) {
	t, err := TypeOf(cmd)
	if err != nil {
		return nil, err
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", t, err)
	}
	out := make([]byte, 0, 1+len(payload))
	out = append(out, byte(t))
	return append(out, payload...), nil
}

// Decode parses a log entry. It returns ErrUnknownCommand for a type this
// binary does not know (ignorable or not) and ErrMalformedCommand for a
// payload that does not parse.
func Decode(data []byte) (CommandType, Command, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("%w: empty entry", ErrMalformedCommand)
	}
	t := CommandType(data[0])
	info, ok := commands[t]
	if !ok {
		return t, nil, fmt.Errorf("%w: %d", ErrUnknownCommand, data[0])
	}
	cmd := info.new()
	if err := proto.Unmarshal(data[1:], cmd); err != nil {
		return t, nil, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, t, err)
	}
	if cmd.GetHeader() == nil {
		return t, nil, fmt.Errorf("%w: %s: missing header", ErrMalformedCommand, t)
	}
	return t, cmd, nil
}

// Validate is what a proposer runs before an entry may enter the log: the
// entry must decode into a known command with a header. It never panics.
func Validate(data []byte) error {
	_, _, err := Decode(data)
	return err
}

// Stamp sets the header time of an encoded entry and returns the new entry.
// The leader calls it just before appending, so Apply never reads a clock.
func Stamp(data []byte, unixNano int64) ([]byte, error) {
	_, cmd, err := Decode(data)
	if err != nil {
		return nil, err
	}
	cmd.GetHeader().TimeUnixNano = unixNano
	return Encode(cmd)
}
