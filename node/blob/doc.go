// Package blob is each node's store of code packages, content-addressed by
// the SHA-256 of the uploaded zip. A blob holds the original zip (served
// back byte for byte by GetFunction's Code.Location), the package sandboxes
// unpack (a deterministic tar.zst, see node/codepkg) and its manifest. A
// node that only runs a package it fetched from a peer holds a cached copy
// without the zip.
//
// Every byte read back is checked against its digest: streams fail at EOF
// on a mismatch, Verify re-reads a whole blob (the periodic scrub), and an
// unpack publishes a tree only once the package's digest matched. Blobs
// arriving from peers go through a Writer that checks both digests before
// the blob becomes visible.
//
// Unpacked read-only trees, shared by every sandbox of the same code, are
// created on first use, once, atomically, and evicted least recently used
// under a disk budget, never while a sandbox holds one.
//
// The store knows nothing of the cluster: which blobs a node should hold,
// and where to fetch missing ones, is the node package's business.
package blob
