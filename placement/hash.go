package placement

// The ring's hash is 64-bit FNV-1a followed by the MurmurHash3 fmix64
// finalizer. FNV-1a alone is cheap and fully specified but mixes poorly
// into its high bits for short keys that differ only at the end
// ("acct/fn/1", "acct/fn/2"), and the ring orders points by their high
// bits; the finalizer makes every input bit affect every output bit. The
// hash is written out here rather than taken from hash/fnv so that hashing
// a key allocates nothing, and rather than from a third-party module so
// that the ring's layout depends on nothing that can change underneath it:
// every node of a cluster, whatever it was built with, must place the same
// points.
//
// TestHashBalance measures the result against the binomial spread an ideal
// hash would give.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211

	// golden is 2^64 divided by the golden ratio, the SplitMix64 step:
	// successive multiples of it are spread evenly over 64 bits.
	golden = 0x9E3779B97F4A7C15
)

// fnv1a folds s into the running FNV-1a state h.
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finalizer: a bijection with full
// avalanche.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashKey is the ring position of a key.
func hashKey(key string) uint64 {
	return fmix64(fnv1a(fnvOffset64, key))
}

// pointHash is the position of a member's i-th virtual node: a SplitMix64
// sequence seeded by the member id's hash, so a member's points depend on
// its id alone and never on which other members exist.
func pointHash(idHash uint64, i int) uint64 {
	return fmix64(idHash + uint64(i+1)*golden)
}
