package sim

import "math"

// The simulator draws its randomness from SplitMix64 rather than
// math/rand so that a seed gives the same trace and the same replay on
// every Go version: the derived distributions of math/rand/v2 are not
// promised to stay fixed.

// splitmix is a SplitMix64 generator.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	return mix(s.state)
}

// mix is SplitMix64's output function, also used to hash coordinates
// (function, minute, index) into reproducible draws.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// unit maps 64 random bits to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// float64 is uniform in [0, 1).
func (s *splitmix) float64() float64 { return unit(s.next()) }

// intn is uniform in [0, n).
func (s *splitmix) intn(n int) int { return int(s.next() % uint64(n)) }

// normal is a standard normal draw (Box-Muller).
func (s *splitmix) normal() float64 {
	u1 := 1 - s.float64() // (0, 1]
	u2 := s.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// poisson draws from a Poisson distribution of mean lambda: Knuth's
// product method for small means, a rounded normal approximation above 30.
func (s *splitmix) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*s.normal())))
	}
	limit, k, p := math.Exp(-lambda), 0, s.float64()
	for p > limit {
		k++
		p *= s.float64()
	}
	return k
}
