package cluster

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stokehq/stoke/proto/rpcpb"
)

// Role is what a node is in the Raft configuration.
type Role uint8

const (
	// RoleWorker nodes replicate the metadata as Raft non-voters.
	RoleWorker Role = iota
	// RoleServer nodes are Raft voters (3 or 5 in a real cluster).
	RoleServer
)

func (r Role) String() string {
	if r == RoleServer {
		return "server"
	}
	return "worker"
}

// ParseRole parses "server" or "worker".
func ParseRole(s string) (Role, error) {
	switch s {
	case "server":
		return RoleServer, nil
	case "worker":
		return RoleWorker, nil
	}
	return RoleWorker, fmt.Errorf("cluster: unknown role %q (want server or worker)", s)
}

// MemberStatus is a node's liveness as this node's gossip sees it.
type MemberStatus uint8

const (
	// StatusAlive: the node answers probes.
	StatusAlive MemberStatus = iota
	// StatusSuspect is reserved for a node under suspicion. memberlist
	// v0.7.0 does not expose its suspicion state (Node.State is shadowed by
	// its internal nodeState), so Gossip reports nodes as alive until they
	// are declared dead.
	StatusSuspect
	// StatusDead: the node stopped answering (crash, kill, partition).
	StatusDead
	// StatusLeft: the node said goodbye (graceful leave).
	StatusLeft
)

func (s MemberStatus) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusSuspect:
		return "suspect"
	case StatusDead:
		return "dead"
	case StatusLeft:
		return "left"
	}
	return fmt.Sprintf("MemberStatus(%d)", uint8(s))
}

// LoadSummary is the compact load report a node gossips about itself.
// Placement reads it from Member.Load; the node updates it with
// Gossip.SetLoad.
type LoadSummary struct {
	SandboxesIdle int
	SandboxesBusy int
	// Inflight is the number of invocations running on the node.
	Inflight int
	// MemoryUsedMB is the memory held by sandboxes.
	MemoryUsedMB int64
	// Draining is true once the node stopped taking new work (leaving).
	Draining bool
}

// NodeMeta is what a node gossips about itself besides its load.
type NodeMeta struct {
	ID   string
	Role Role
	// Advertised addresses (host:port) peers use.
	HTTPAddr   string
	GRPCAddr   string
	RaftAddr   string
	GossipAddr string
	// Capacity of the node.
	MemoryMB int64
	CPUs     int
	// BuildVersion is the stoke version the node runs.
	BuildVersion string
	// Leaving is set by a node about to leave gracefully.
	Leaving bool
}

// Member is one node as the local gossip sees it.
type Member struct {
	NodeMeta
	Status MemberStatus
	Load   LoadSummary
	// Since is when this node saw Status last change.
	Since time.Time
}

// Alive reports whether the member is alive or suspect: a suspect node
// still serves until the cluster declares it dead, so callers keep using it.
func (m Member) Alive() bool { return m.Status == StatusAlive || m.Status == StatusSuspect }

// encodeMeta encodes meta and load as memberlist node meta.
func encodeMeta(m NodeMeta, l LoadSummary) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&rpcpb.NodeMeta{
		Id: m.ID, Role: m.Role.String(), HttpAddr: m.HTTPAddr, GrpcAddr: m.GRPCAddr,
		RaftAddr: m.RaftAddr, GossipAddr: m.GossipAddr, MemoryMb: m.MemoryMB, Cpus: int32(m.CPUs),
		BuildVersion: m.BuildVersion, Leaving: m.Leaving,
		Load: &rpcpb.LoadSummary{SandboxesIdle: uint32(l.SandboxesIdle), SandboxesBusy: uint32(l.SandboxesBusy),
			Inflight: uint32(l.Inflight), MemoryUsedMb: l.MemoryUsedMB, Draining: l.Draining},
	})
}

// decodeMeta parses a peer's memberlist node meta.
func decodeMeta(b []byte) (NodeMeta, LoadSummary, error) {
	var pb rpcpb.NodeMeta
	if err := proto.Unmarshal(b, &pb); err != nil {
		return NodeMeta{}, LoadSummary{}, fmt.Errorf("cluster: node meta: %w", err)
	}
	role, err := ParseRole(pb.Role)
	if err != nil {
		return NodeMeta{}, LoadSummary{}, err
	}
	if pb.Id == "" {
		return NodeMeta{}, LoadSummary{}, fmt.Errorf("cluster: node meta without an id")
	}
	m := NodeMeta{ID: pb.Id, Role: role, HTTPAddr: pb.HttpAddr, GRPCAddr: pb.GrpcAddr, RaftAddr: pb.RaftAddr,
		GossipAddr: pb.GossipAddr, MemoryMB: pb.MemoryMb, CPUs: int(pb.Cpus), BuildVersion: pb.BuildVersion,
		Leaving: pb.Leaving}
	l := pb.GetLoad()
	return m, LoadSummary{SandboxesIdle: int(l.GetSandboxesIdle()), SandboxesBusy: int(l.GetSandboxesBusy()),
		Inflight: int(l.GetInflight()), MemoryUsedMB: l.GetMemoryUsedMb(), Draining: l.GetDraining()}, nil
}

// EventKind says what changed about a member.
type EventKind uint8

const (
	// EventJoin: a node appeared or came back alive.
	EventJoin EventKind = iota
	// EventUpdate: a node's meta or load changed.
	EventUpdate
	// EventLeave: a node left gracefully.
	EventLeave
	// EventFail: a node was declared dead.
	EventFail
	// EventForget: a dead or left node was dropped from the member list.
	EventForget
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	case EventForget:
		return "forget"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one membership change, delivered to subscribers in the order
// the local gossip observed it.
type Event struct {
	Kind   EventKind
	Member Member
}
