// Package codepkg turns an uploaded Lambda zip into Stoke's code package and
// back into a directory a sandbox can mount.
//
// Convert reads a zip once, refuses anything that could hurt the node or
// another tenant (paths that leave the root, symlinks whose targets do,
// device files, setuid bits, duplicate or clashing names, encrypted entries,
// zip bombs and size headers that lie; sizes are counted from the bytes
// actually decompressed) and writes the accepted tree as a deterministic tar
// stream compressed with zstd, the form sandboxes unpack fastest. Its
// Manifest carries Lambda's CodeSha256 of the zip, the SHA-256 of the
// tar.zst that names the blob, and an index of files and modes. Convert
// touches no disk.
//
// Unpack extracts a tar.zst into a temporary sibling of its destination,
// checks the stream's checksum and every path again (it trusts no archive,
// not even its own), makes the tree read-only, syncs it and renames it into
// place, so that a directory at the destination is always complete: a
// sandbox never sees a half-unpacked tree, and of concurrent Unpacks of the
// same destination exactly one publishes its tree.
//
// docs/code-packages.md describes the format and the validation rules.
package codepkg
