package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a recorded value is known to within 1/128 (0.8%) of itself.
const subBits = 7

const (
	subCount = 1 << subBits
	// nBuckets covers every int64: values below subCount exactly, then
	// subCount buckets for each power of two from 2^subBits to 2^63.
	nBuckets = (64 - subBits + 1) * subCount
)

// Histogram is a log-linear histogram of non-negative int64 values
// (nanoseconds, for latencies) in the manner of HdrHistogram: values below
// 128 are counted exactly, larger ones in buckets 1/128 of their
// magnitude wide, so every quantile is within 0.8% of a recorded value.
// Recording is O(1) and does not allocate. Min, Max and Mean are exact.
//
// A Histogram is not safe for concurrent use: give each recording
// goroutine its own and Merge them.
type Histogram struct {
	counts   []uint64
	total    uint64
	min, max int64
	sum      float64
}

// NewHistogram returns an empty histogram (about 60 KiB).
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, nBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket index of v >= 0.
func bucketOf(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	shift := bits.Len64(u) - 1 - subBits
	return shift*subCount + int(u>>uint(shift))
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	mant := uint64(i - shift*subCount)
	lo64 := mant << uint(shift)
	return int64(lo64), int64(lo64 + (1 << uint(shift)) - 1)
}

// Record counts v; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q (0 <= q <= 1) by the
// nearest-rank method: the smallest recorded value v such that at least
// q of the values are <= v, reported as the highest value its bucket
// holds (so never below the true quantile, and at most 0.8% above it),
// clamped to [Min, Max]. It returns 0 for an empty histogram; q is clamped
// to [0, 1].
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// Merge adds the values recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Latency summarises a histogram of nanosecond latencies.
type Latency struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns h's count, extremes, mean and p50/p90/p99/p99.9.
func (h *Histogram) Summary() Latency {
	return Latency{
		Count: h.total,
		Min:   time.Duration(h.Min()),
		Mean:  time.Duration(h.Mean()),
		P50:   time.Duration(h.Quantile(0.50)),
		P90:   time.Duration(h.Quantile(0.90)),
		P99:   time.Duration(h.Quantile(0.99)),
		P999:  time.Duration(h.Quantile(0.999)),
		Max:   time.Duration(h.Max()),
	}
}

// CDFPoint is one point of a latency distribution: the fraction of values
// at or below Value.
type CDFPoint struct {
	Value    time.Duration `json:"value_ns"`
	Fraction float64       `json:"fraction"`
}

// CDF returns the cumulative distribution at the upper edge of every
// non-empty bucket, for plotting.
func (h *Histogram) CDF() []CDFPoint {
	if h.total == 0 {
		return nil
	}
	var pts []CDFPoint
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		_, hi := bucketRange(i)
		pts = append(pts, CDFPoint{Value: time.Duration(min(max(hi, h.min), h.max)), Fraction: float64(seen) / float64(h.total)})
	}
	return pts
}
