package node

import (
	"time"

	"github.com/stokehq/stoke/node/admission"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// Lease renewals on the wire (rpcpb.Coordinator). lease_wire_test.go
// checks that every field survives the round trip.

func poolToPB(p admission.Pool) *rpcpb.LeasePool {
	return &rpcpb.LeasePool{AccountId: p.AccountID, Function: p.Function}
}

func poolFromPB(p *rpcpb.LeasePool) admission.Pool {
	return admission.Pool{AccountID: p.GetAccountId(), Function: p.GetFunction()}
}

func renewalToPB(r admission.Renewal) *rpcpb.RenewLeasesRequest {
	req := &rpcpb.RenewLeasesRequest{NodeId: r.Holder.Node, Incarnation: r.Holder.Incarnation,
		IncarnationAgeMs: r.Holder.Age.Milliseconds(), CleanStart: r.Holder.CleanStart, Full: r.Full}
	for _, d := range r.Demands {
		req.Demands = append(req.Demands, &rpcpb.LeaseDemand{
			Pool: poolToPB(d.Pool), InFlight: uint32(max(d.InFlight, 0)), Want: uint32(max(d.Want, 0)),
			HeldEpoch: d.Held.Epoch, HeldSeq: d.Held.Seq, HeldSlots: uint32(max(d.HeldSlots, 0)),
			HeldRemainingMs: d.HeldRemaining.Milliseconds(),
		})
	}
	return req
}

func renewalFromPB(req *rpcpb.RenewLeasesRequest) admission.Renewal {
	r := admission.Renewal{
		Holder: admission.Holder{Node: req.NodeId, Incarnation: req.Incarnation,
			Age: time.Duration(req.IncarnationAgeMs) * time.Millisecond, CleanStart: req.CleanStart},
		Full: req.Full, Demands: make([]admission.Demand, 0, len(req.Demands)),
	}
	for _, d := range req.Demands {
		r.Demands = append(r.Demands, admission.Demand{
			Pool: poolFromPB(d.Pool), InFlight: int(d.InFlight), Want: int(d.Want),
			Held: admission.GrantID{Epoch: d.HeldEpoch, Seq: d.HeldSeq}, HeldSlots: int(d.HeldSlots),
			HeldRemaining: time.Duration(d.HeldRemainingMs) * time.Millisecond,
		})
	}
	return r
}

func grantsToPB(grants []admission.Grant) []*rpcpb.LeaseGrant {
	out := make([]*rpcpb.LeaseGrant, 0, len(grants))
	for _, g := range grants {
		out = append(out, &rpcpb.LeaseGrant{Pool: poolToPB(g.Pool), Epoch: g.ID.Epoch, Seq: g.ID.Seq,
			Slots: uint32(max(g.Slots, 0)), TtlMs: g.TTL.Milliseconds(), Retry: g.Retry})
	}
	return out
}

func grantsFromPB(grants []*rpcpb.LeaseGrant) []admission.Grant {
	out := make([]admission.Grant, 0, len(grants))
	for _, g := range grants {
		out = append(out, admission.Grant{Pool: poolFromPB(g.Pool), ID: admission.GrantID{Epoch: g.Epoch, Seq: g.Seq},
			Slots: int(g.Slots), TTL: time.Duration(g.TtlMs) * time.Millisecond, Retry: g.Retry})
	}
	return out
}
