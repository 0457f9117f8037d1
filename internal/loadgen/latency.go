package loadgen

import (
	"math"
	"slices"
	"time"
)

// Latencies holds every measured latency of a run, sorted from fastest to
// slowest. A run is bounded in time and count, so keeping every sample is
// affordable and makes each percentile exact instead of bucketed.
type Latencies []time.Duration

// NewLatencies returns the samples sorted, in a new slice.
func NewLatencies(samples []time.Duration) Latencies {
	l := slices.Clone(samples)
	slices.Sort(l)
	return l
}

// Percentile returns the nearest-rank p-th percentile: the smallest sample
// that at least p percent of the samples do not exceed. p is clamped to
// [0, 100]; 0 gives the fastest sample, 100 the slowest. It returns 0 when
// there are no samples.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	switch {
	case math.IsNaN(p) || p <= 0:
		return l[0]
	case p >= 100:
		return l[len(l)-1]
	}
	rank := int(math.Ceil(p / 100 * float64(len(l))))
	return l[max(rank, 1)-1]
}

// Mean returns the average latency, or 0 when there are no samples.
func (l Latencies) Mean() time.Duration {
	if len(l) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}
