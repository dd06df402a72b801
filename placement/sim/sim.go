package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/stokehq/stoke/placement"
)

// Config describes the simulated cluster and the replay.
type Config struct {
	// Nodes is the cluster size. Nodes are equal: NodeMemoryMB each, and
	// that weight on the ring.
	Nodes int
	// NodeMemoryMB is each node's sandbox memory budget; busy and idle
	// sandboxes both count against it.
	NodeMemoryMB int
	// KeepAlive is how long a sandbox stays warm after its last
	// invocation ends before it is reclaimed.
	KeepAlive time.Duration
	// MaxDuration caps each invocation's execution time, as a function's
	// timeout does (Lambda's maximum is 15 minutes); some functions of the
	// Azure trace run for hours. Zero means no cap.
	MaxDuration time.Duration
	// ColdStart is added to an invocation's execution time when it
	// creates its sandbox (init time); the sandbox is busy for it.
	ColdStart time.Duration
	// Candidates is how many nodes an invocation may try, in the
	// policy's order, before it is rejected: the home and its spill
	// targets. At least 1.
	Candidates int
	// WarmupMinutes are replayed first without being measured, so that
	// the figures describe a cluster in steady state rather than one
	// filling up from empty.
	WarmupMinutes int
	// SampleEvery is how often idle memory is sampled (simulated time).
	SampleEvery time.Duration
	// Ring configures the placement ring of the ring policies.
	Ring placement.Config
	// Seed drives the expansion of per-minute counts into arrivals and
	// durations, and the random policy.
	Seed uint64
}

// DefaultConfig is the replay BenchmarkPlacementSim starts from, before
// Scenario.Build sets Nodes and sizes NodeMemoryMB: Lambda's 10-minute
// keep-alive and 15-minute timeout, a 250 ms cold start, three candidates
// (home and two spill targets), 20 minutes of warm-up and an idle-memory
// sample every 10 seconds.
func DefaultConfig() Config {
	return Config{
		NodeMemoryMB:  16 * 1024,
		KeepAlive:     10 * time.Minute,
		MaxDuration:   15 * time.Minute,
		ColdStart:     250 * time.Millisecond,
		Candidates:    3,
		WarmupMinutes: 20,
		SampleEvery:   10 * time.Second,
		Ring:          placement.DefaultConfig(),
		Seed:          1,
	}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Nodes < 1:
		return fmt.Errorf("sim: Config.Nodes must be at least 1, got %d", c.Nodes)
	case c.NodeMemoryMB < 1:
		return fmt.Errorf("sim: Config.NodeMemoryMB must be at least 1, got %d", c.NodeMemoryMB)
	case c.KeepAlive < 0 || c.ColdStart < 0 || c.MaxDuration < 0:
		return errors.New("sim: Config.KeepAlive, MaxDuration and ColdStart must not be negative")
	case c.Candidates < 1:
		return fmt.Errorf("sim: Config.Candidates must be at least 1, got %d", c.Candidates)
	case c.WarmupMinutes < 0:
		return fmt.Errorf("sim: Config.WarmupMinutes must not be negative, got %d", c.WarmupMinutes)
	case c.SampleEvery < time.Millisecond:
		return fmt.Errorf("sim: Config.SampleEvery must be at least 1ms, got %v", c.SampleEvery)
	}
	return c.Ring.Validate()
}

// Result is what one replay measured, after warm-up.
type Result struct {
	Trace  string
	Policy Policy
	Nodes  int

	// Invocations is how many arrived; each was a warm hit, a cold start
	// or rejected.
	Invocations int64
	// WarmHits ran on an idle sandbox of their function.
	WarmHits int64
	// ColdStarts created a sandbox: the sandboxes created.
	ColdStarts int64
	// Rejected found no candidate with an idle sandbox or memory for one.
	Rejected int64
	// Spilled ran somewhere other than the policy's first candidate
	// (for the ring policies, the first candidate is the home unless it is
	// over its bound).
	Spilled int64
	// OffHome ran somewhere other than the function's home shard.
	OffHome int64
	// PeakIdleMB and MeanIdleMB are the cluster's memory held by idle
	// warm sandboxes, over the samples.
	PeakIdleMB, MeanIdleMB float64
	// Imbalance is the busiest node's execution time over the mean
	// node's, across the whole measured window (1 is perfect balance).
	Imbalance float64
	// MinuteImbalance is the same ratio per minute, averaged over the
	// minutes: how hot the hottest node runs at a time.
	MinuteImbalance float64
}

// WarmRatio is WarmHits over the invocations that ran.
func (r Result) WarmRatio() float64 {
	if ran := r.WarmHits + r.ColdStarts; ran > 0 {
		return float64(r.WarmHits) / float64(ran)
	}
	return 0
}

// Run replays tr through a cluster under policy p. The replay is
// deterministic: the same trace, config and policy give the same Result.
func Run(tr *Trace, cfg Config, p Policy) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.WarmupMinutes >= tr.Minutes() {
		return Result{}, fmt.Errorf("sim: %d warm-up minutes leave nothing of the %d-minute trace %s to measure", cfg.WarmupMinutes, tr.Minutes(), tr.Name)
	}
	s := newSimulation(tr, cfg, p)
	var buf []invocation
	for m := range tr.Minutes() {
		s.startMinute(m)
		buf = tr.minute(m, cfg.Seed, buf)
		for _, inv := range buf {
			inv.duration = s.capDuration(inv.duration)
			s.invoke(inv)
		}
	}
	s.startMinute(tr.Minutes())
	return s.result(), nil
}

// PeakDemandMB is the most memory the trace's invocations hold at once
// if every running invocation needs its own sandbox: the least a cluster
// needs to run it without rejections, whatever the placement. It uses
// cfg's Seed and MaxDuration, as Run does, and ignores warm-up.
func PeakDemandMB(tr *Trace, cfg Config) int64 {
	s := &simulation{cfg: cfg}
	var running endings
	var busy, peak int64
	var buf []invocation
	release := func(e ending) { busy -= int64(e.v) }
	for m := range tr.Minutes() {
		buf = tr.minute(m, cfg.Seed, buf)
		for _, inv := range buf {
			running.popUntil(inv.at, release)
			mem := tr.Functions[inv.fn].MemoryMB
			running.push(ending{at: inv.at + s.capDuration(inv.duration), v: mem})
			busy += int64(mem)
			peak = max(peak, busy)
		}
	}
	return peak
}

func (s *simulation) capDuration(ms int64) int64 {
	if c := s.cfg.MaxDuration.Milliseconds(); c > 0 {
		return min(ms, c)
	}
	return ms
}

// simulation is the state of one replay.
type simulation struct {
	tr        *Trace
	cfg       Config
	policy    Policy
	keepAlive int64 // ms
	coldStart int64 // ms

	nodes   []*node
	index   map[string]int // node id -> index in nodes
	ring    *placement.Ring
	rng     splitmix
	running endings // running invocations; v is the node index
	release func(ending)

	measuring  bool
	res        Result
	nextSample int64
	samples    int64
	idleSumMB  float64
	minuteSum  float64
	minutes    int64
}

func newSimulation(tr *Trace, cfg Config, p Policy) *simulation {
	s := &simulation{
		tr: tr, cfg: cfg, policy: p,
		keepAlive: cfg.KeepAlive.Milliseconds(),
		coldStart: cfg.ColdStart.Milliseconds(),
		index:     map[string]int{},
		rng:       splitmix{state: cfg.Seed},
		res:       Result{Trace: tr.Name, Policy: p, Nodes: cfg.Nodes},
	}
	members := make([]placement.Member, cfg.Nodes)
	for i := range cfg.Nodes {
		id := fmt.Sprintf("node-%d", i)
		s.nodes = append(s.nodes, newNode(id, int64(cfg.NodeMemoryMB)))
		s.index[id] = i
		members[i] = placement.Member{ID: id, Weight: uint32(cfg.NodeMemoryMB)}
	}
	s.ring = placement.NewRing(members, cfg.Ring)
	s.release = func(e ending) { s.nodes[e.v].inflight-- }
	return s
}

// startMinute closes the previous minute's per-minute figures and starts
// measuring once warm-up is over.
func (s *simulation) startMinute(m int) {
	if s.measuring {
		var sum, peak int64
		for _, n := range s.nodes {
			sum += n.minuteBusyMs
			peak = max(peak, n.minuteBusyMs)
			n.minuteBusyMs = 0
		}
		if sum > 0 {
			s.minuteSum += float64(peak) / (float64(sum) / float64(len(s.nodes)))
			s.minutes++
		}
	}
	if m == s.cfg.WarmupMinutes {
		s.measuring = true
		s.nextSample = int64(m) * 60_000
	}
	s.sampleUntil(int64(m) * 60_000)
}

// sampleUntil takes the idle-memory samples due before time t.
func (s *simulation) sampleUntil(t int64) {
	for s.measuring && s.nextSample < t {
		var idle int64
		for _, n := range s.nodes {
			idle += n.idleMB(s.nextSample, s.keepAlive)
		}
		s.res.PeakIdleMB = max(s.res.PeakIdleMB, float64(idle))
		s.idleSumMB += float64(idle)
		s.samples++
		s.nextSample += s.cfg.SampleEvery.Milliseconds()
	}
}

// Load implements placement.LoadView: a node's in-flight invocations.
// The simulation gives every router the exact cluster-wide view.
func (s *simulation) Load(id string) int { return s.nodes[s.index[id]].inflight }

func (s *simulation) invoke(inv invocation) {
	s.sampleUntil(inv.at)
	s.running.popUntil(inv.at, s.release)

	fn := s.tr.Functions[inv.fn]
	var cands []string
	switch s.policy {
	case BoundedRing:
		cands = s.ring.Place(fn.Key, s.cfg.Candidates, s, nil)
	case PlainRing:
		cands = s.ring.Preferred(fn.Key, s.cfg.Candidates, nil)
	case Random:
		cands = s.randomNodes()
	}

	if s.measuring {
		s.res.Invocations++
	}
	for i, id := range cands {
		ni := s.index[id]
		n := s.nodes[ni]
		out := n.run(inv.fn, int64(fn.MemoryMB), inv.at, inv.duration, s.coldStart, s.keepAlive)
		if out == refused {
			continue
		}
		busy := inv.duration
		if out == cold {
			busy += s.coldStart
		}
		n.inflight++
		s.running.push(ending{at: inv.at + busy, v: ni})
		if s.measuring {
			if out == warm {
				s.res.WarmHits++
			} else {
				s.res.ColdStarts++
			}
			if i > 0 {
				s.res.Spilled++
			}
			if home, _ := s.ring.Home(fn.Key, nil); home != id {
				s.res.OffHome++
			}
			n.busyMs += busy
			n.minuteBusyMs += busy
		}
		return
	}
	if s.measuring {
		s.res.Rejected++
	}
}

// randomNodes picks Candidates distinct nodes uniformly (a partial
// Fisher-Yates shuffle).
func (s *simulation) randomNodes() []string {
	k := min(s.cfg.Candidates, len(s.nodes))
	picked := make([]int, 0, k)
	out := make([]string, 0, k)
	for len(out) < k {
		i := s.rng.intn(len(s.nodes))
		dup := false
		for _, p := range picked {
			dup = dup || p == i
		}
		if !dup {
			picked = append(picked, i)
			out = append(out, s.nodes[i].id)
		}
	}
	return out
}

func (s *simulation) result() Result {
	r := s.res
	if s.samples > 0 {
		r.MeanIdleMB = s.idleSumMB / float64(s.samples)
	}
	if s.minutes > 0 {
		r.MinuteImbalance = s.minuteSum / float64(s.minutes)
	}
	var sum, peak int64
	for _, n := range s.nodes {
		sum += n.busyMs
		peak = max(peak, n.busyMs)
	}
	if sum > 0 {
		r.Imbalance = float64(peak) / (float64(sum) / float64(len(s.nodes)))
	}
	return r
}
