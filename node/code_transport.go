package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stokehq/stoke/cluster"
	"github.com/stokehq/stoke/node/blob"
	"github.com/stokehq/stoke/proto/rpcpb"
)

// This file carries blobs between nodes: the Blob gRPC service and the
// client side of it. Blob traffic uses connections of its own, so that a
// 50 MB transfer never shares an HTTP/2 connection (and its flow-control
// window) with Raft forwarding and invocations.

var (
	// errNoSource: no node that should hold the blob could provide it.
	errNoSource = errors.New("node: no peer could provide the code package")
	// errTooFewCopies: an upload could not be made durable on enough nodes.
	errTooFewCopies = errors.New("node: too few nodes took the code package")
	// errPeerRefused: a peer refused a blob request (see the message).
	errPeerRefused = errors.New("node: peer refused")
)

// blobPeers reaches peers' Blob service. It dials connections of its own
// (a Dialer separate from the node's shared one), authenticated like every
// node-to-node call (mutual TLS and the cluster token).
type blobPeers struct {
	dialer *cluster.Dialer
	addrOf func(id string) (string, bool)
}

func (p *blobPeers) client(nodeID string) (rpcpb.BlobClient, error) {
	addr, ok := p.addrOf(nodeID)
	if !ok {
		return nil, fmt.Errorf("%w: no address for node %s", errNoSource, nodeID)
	}
	cc, err := p.dialer.Conn(addr)
	if err != nil {
		return nil, fmt.Errorf("node: dial %s for blobs: %w", addr, err)
	}
	return rpcpb.NewBlobClient(cc), nil
}

func (p *blobPeers) close() { _ = p.dialer.Close() }

// blobStatus turns a local blob error into the gRPC status a peer sees.
func blobStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, blob.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, blob.ErrCorrupt):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, blob.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// blobError is blobStatus's inverse, for errors a peer returned.
func blobError(peer string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%s: %w: %s", peer, blob.ErrNotFound, st.Message())
	case codes.DataLoss:
		return fmt.Errorf("%s: %w: %s", peer, blob.ErrCorrupt, st.Message())
	case codes.InvalidArgument, codes.FailedPrecondition:
		return fmt.Errorf("%s: %w: %s", peer, errPeerRefused, st.Message())
	}
	return fmt.Errorf("%s: %s: %s", peer, st.Code(), st.Message())
}

// frameSender is what sendBlob writes frames to (a Push client stream or
// a Fetch server stream).
type frameSender interface{ Send(*rpcpb.BlobFrame) error }

// sendBlob streams blob id to out: a header frame, then the package's
// chunks, then the zip's when withZip (or only the zip when !withPackage).
// Reads are verified: a corrupt local file ends the stream with
// blob.ErrCorrupt before its last bytes go out, and the receiver, which
// verifies too, never publishes what it got.
func (m *codeManager) sendBlob(out frameSender, id string, withPackage, withZip bool) error {
	js, err := m.store.ManifestJSON(id)
	if err != nil {
		return err
	}
	man, err := blob.ParseManifest(id, js)
	if err != nil {
		return err
	}
	hdr := &rpcpb.BlobHeader{Id: id, Manifest: js}
	var parts []blob.Part
	if withPackage {
		hdr.PackageSize = man.TarZstSize
		parts = append(parts, blob.PartPackage)
	}
	if withZip {
		hdr.ZipSize = man.ZipSize
		parts = append(parts, blob.PartZip)
	}
	if err := out.Send(&rpcpb.BlobFrame{Header: hdr}); err != nil {
		return err
	}
	buf := make([]byte, m.cfg.ChunkBytes)
	for _, part := range parts {
		open, pb := m.store.OpenPackage, rpcpb.BlobPart_BLOB_PART_PACKAGE
		if part == blob.PartZip {
			open, pb = m.store.OpenZip, rpcpb.BlobPart_BLOB_PART_ZIP
		}
		rc, _, err := open(id)
		if err != nil {
			return err
		}
		err = m.sendPart(out, rc, pb, buf)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *codeManager) sendPart(out frameSender, r io.Reader, part rpcpb.BlobPart, buf []byte) error {
	for {
		n, err := io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err // includes blob.ErrCorrupt: the last chunk is withheld
		}
		if n > 0 {
			if serr := out.Send(&rpcpb.BlobFrame{Part: part, Data: buf[:n]}); serr != nil {
				return serr
			}
			m.counters.bytesSent.Add(int64(n))
		}
		if err != nil {
			return nil
		}
	}
}

// frameReceiver is what receiveBlob reads frames from.
type frameReceiver interface {
	Recv() (*rpcpb.BlobFrame, error)
}

// receiveBlob stores the blob a stream carries, starting after its
// header, through a verifying Writer. created is false when this node
// already held the blob.
func (m *codeManager) receiveBlob(in frameReceiver, hdr *rpcpb.BlobHeader) (bool, error) {
	if hdr == nil || hdr.PackageSize <= 0 {
		return false, fmt.Errorf("%w: a blob stream must open with a header announcing the package", blob.ErrInvalid)
	}
	w, err := m.store.NewWriter(hdr.Id, hdr.Manifest, hdr.ZipSize > 0)
	if err != nil {
		return false, err
	}
	defer w.Abort()
	for {
		f, err := in.Recv()
		if errors.Is(err, io.EOF) {
			return w.Commit()
		}
		if err != nil {
			return false, err
		}
		part := blob.PartPackage
		if f.Part == rpcpb.BlobPart_BLOB_PART_ZIP {
			part = blob.PartZip
		} else if f.Part != rpcpb.BlobPart_BLOB_PART_PACKAGE {
			return false, fmt.Errorf("%w: frame of part %v", blob.ErrInvalid, f.Part)
		}
		if err := w.Write(part, f.Data); err != nil {
			return false, err
		}
		m.counters.bytesReceived.Add(int64(len(f.Data)))
	}
}

// blobService serves the Blob gRPC service over the node's store.
type blobService struct {
	rpcpb.UnimplementedBlobServer
	m *codeManager
}

func (s *blobService) Push(stream rpcpb.Blob_PushServer) error {
	if s.m.refusePushes.Load() {
		return status.Error(codes.Unavailable, "failpoint: refusing pushes")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr != nil && blob.ValidID(hdr.Id) && (s.m.store.HasZip(hdr.Id) || (hdr.ZipSize == 0 && s.m.store.Has(hdr.Id))) {
		// Already here: answer at once, the pusher stops sending.
		return stream.SendAndClose(&rpcpb.PushResponse{Created: false})
	}
	created, err := s.m.receiveBlob(stream, hdr)
	if err != nil {
		s.m.log.Warn("refused a pushed blob", "blob", hdr.GetId(), "err", err)
		return blobStatus(err)
	}
	return stream.SendAndClose(&rpcpb.PushResponse{Created: created})
}

func (s *blobService) Fetch(req *rpcpb.FetchRequest, stream rpcpb.Blob_FetchServer) error {
	if req.IncludeZip && !s.m.store.HasZip(req.Id) || !s.m.store.Has(req.Id) {
		return status.Errorf(codes.NotFound, "node %s does not hold %s", s.m.self, req.Id)
	}
	err := s.m.sendBlob(stream, req.Id, req.IncludePackage, req.IncludeZip)
	if errors.Is(err, blob.ErrCorrupt) {
		s.m.corruptionFound(req.Id, err)
	}
	return blobStatus(err)
}

func (s *blobService) Pull(ctx context.Context, req *rpcpb.PullRequest) (*rpcpb.PullResponse, error) {
	if !blob.ValidID(req.Id) {
		return nil, status.Errorf(codes.InvalidArgument, "blob id %q", req.Id)
	}
	src, err := s.m.ensure(ctx, req.Id, true, req.Sources)
	if err != nil {
		return nil, blobStatus(err)
	}
	return &rpcpb.PullResponse{Source: src}, nil
}

func (s *blobService) Stat(_ context.Context, req *rpcpb.StatRequest) (*rpcpb.StatResponse, error) {
	out := &rpcpb.StatResponse{}
	for _, id := range req.Ids {
		out.Blobs = append(out.Blobs, &rpcpb.BlobStat{Id: id, HasPackage: s.m.store.Has(id), HasZip: s.m.store.HasZip(id)})
	}
	return out, nil
}

func (s *blobService) Drop(_ context.Context, req *rpcpb.DropRequest) (*rpcpb.DropResponse, error) {
	v := s.m.meta.View()
	if v.Blob(req.Id) != nil || v.ReferencedBlobs()[req.Id] {
		return nil, status.Errorf(codes.FailedPrecondition, "blob %s is recorded or referenced; only collection deletes it", req.Id)
	}
	if !s.m.store.Has(req.Id) {
		return &rpcpb.DropResponse{}, nil
	}
	if err := s.m.store.Delete(req.Id); err != nil {
		return nil, blobStatus(err)
	}
	return &rpcpb.DropResponse{Dropped: true}, nil
}

// push sends a complete copy of blob id to peer and reports whether the
// peer created it (false: it already held one).
func (m *codeManager) push(ctx context.Context, peer, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	c, err := m.peers.client(peer)
	if err != nil {
		return false, err
	}
	stream, err := c.Push(ctx)
	if err != nil {
		return false, blobError(peer, err)
	}
	err = m.sendBlob(stream, id, true, true)
	if errors.Is(err, io.EOF) {
		err = nil // the peer answered early: it holds the blob already
	}
	if err != nil {
		cancel()
		if errors.Is(err, blob.ErrCorrupt) {
			m.corruptionFound(id, err)
		}
		return false, err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return false, blobError(peer, err)
	}
	m.counters.pushes.Add(1)
	return resp.Created, nil
}

// fetchFrom copies blob id from peer into the local store: the package,
// and the zip when complete.
func (m *codeManager) fetchFrom(ctx context.Context, peer, id string, complete bool) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	c, err := m.peers.client(peer)
	if err != nil {
		return err
	}
	stream, err := c.Fetch(ctx, &rpcpb.FetchRequest{Id: id, IncludePackage: true, IncludeZip: complete})
	if err != nil {
		return blobError(peer, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return blobError(peer, err)
	}
	if first.GetHeader().GetId() != id {
		return fmt.Errorf("%s: %w: asked for %s, got %q", peer, blob.ErrInvalid, id, first.GetHeader().GetId())
	}
	if _, err := m.receiveBlob(stream, first.Header); err != nil {
		return blobError(peer, err)
	}
	return nil
}

// fetchZipTo streams blob id's zip from peer into w and returns its size.
// The caller verifies the bytes (the peer's stream fails on corruption,
// but only after sending what it read).
func (m *codeManager) fetchZipTo(ctx context.Context, peer, id string, w io.Writer) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	c, err := m.peers.client(peer)
	if err != nil {
		return 0, err
	}
	stream, err := c.Fetch(ctx, &rpcpb.FetchRequest{Id: id, IncludeZip: true})
	if err != nil {
		return 0, blobError(peer, err)
	}
	var n int64
	for {
		f, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, blobError(peer, err)
		}
		if f.Header != nil {
			continue
		}
		if _, err := w.Write(f.Data); err != nil {
			return n, err
		}
		n += int64(len(f.Data))
		m.counters.bytesReceived.Add(int64(len(f.Data)))
	}
}

// pull asks target to fetch a complete copy of blob id from sources.
func (m *codeManager) pull(ctx context.Context, target, id string, sources []string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	c, err := m.peers.client(target)
	if err != nil {
		return err
	}
	_, err = c.Pull(ctx, &rpcpb.PullRequest{Id: id, Sources: sources})
	return blobError(target, err)
}

// stat asks peer which of ids it holds completely.
func (m *codeManager) stat(ctx context.Context, peer string, ids []string) (map[string]bool, error) {
	c, err := m.peers.client(peer)
	if err != nil {
		return nil, err
	}
	resp, err := c.Stat(ctx, &rpcpb.StatRequest{Ids: ids})
	if err != nil {
		return nil, blobError(peer, err)
	}
	out := map[string]bool{}
	for _, b := range resp.Blobs {
		if b.HasZip {
			out[b.Id] = true
		}
	}
	return out, nil
}

// drop asks peer to delete its unrecorded copy of blob id.
func (m *codeManager) drop(ctx context.Context, peer, id string) error {
	c, err := m.peers.client(peer)
	if err != nil {
		return err
	}
	_, err = c.Drop(ctx, &rpcpb.DropRequest{Id: id})
	return blobError(peer, err)
}
