package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestBucketsCoverEveryValue(t *testing.T) {
	t.Parallel()
	values := []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<20 + 1, 123456789, 1 << 40, math.MaxInt64 - 1, math.MaxInt64}
	for i := range 64 {
		values = append(values, int64(1)<<i-1, int64(1)<<i)
	}
	for _, v := range values {
		if v < 0 {
			continue
		}
		b := bucketOf(v)
		if b < 0 || b >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, b, nBuckets)
		}
		lo, hi := bucketRange(b)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d, %d]", v, b, lo, hi)
		}
		if v >= subCount && float64(hi-lo) > float64(lo)/subCount {
			t.Errorf("bucket %d [%d, %d] is wider than 1/%d of its values", b, lo, hi, subCount)
		}
	}
	// Buckets are contiguous and increasing.
	_, prevHi := bucketRange(0)
	for b := 1; b < nBuckets; b++ {
		lo, hi := bucketRange(b)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d [%d, %d] does not follow %d", b, lo, hi, prevHi)
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			break
		}
	}
}

func TestQuantilesOfSmallValuesAreExact(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{
		{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}, {-1, 1}, {2, 100},
	} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Errorf("count %d min %d max %d mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
}

func TestQuantilesWithinPrecision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"uniform µs", func(r *rand.Rand) int64 { return r.Int64N(int64(time.Millisecond)) }},
		{"lognormal", func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*2 + 12)) }},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 50_000_000 + r.Int64N(1000)
			}
			return 20_000 + r.Int64N(5000)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, 2))
			h := NewHistogram()
			vals := make([]int64, 100_000)
			for i := range vals {
				vals[i] = tc.gen(r)
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
				want, got := exactQuantile(vals, q), h.Quantile(q)
				// Never below the true quantile, at most one bucket above.
				if got < want || float64(got-want) > float64(want)/subCount+1 {
					t.Errorf("q%v = %d, exact %d (allowed +%.2f%%)", q, got, want, 100.0/subCount)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
		})
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 20_000 {
		v := r.Int64N(1 << 30)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		all.Record(v)
	}
	a.Merge(b)
	a.Merge(NewHistogram()) // an empty one changes nothing
	if a.Summary() != all.Summary() {
		t.Fatalf("merged %+v, want %+v", a.Summary(), all.Summary())
	}
}

func TestEmptyNegativeAndReset(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	if h.Quantile(0.5) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.CDF() != nil {
		t.Fatalf("empty histogram: %+v", h.Summary())
	}
	h.Record(-5)
	h.RecordDuration(3 * time.Nanosecond)
	if h.Count() != 2 || h.Min() != 0 || h.Max() != 3 {
		t.Fatalf("after -5 and 3: %+v", h.Summary())
	}
	h.Reset()
	if h.Count() != 0 || h.Quantile(1) != 0 {
		t.Fatalf("after Reset: %+v", h.Summary())
	}
	h.Record(math.MaxInt64)
	if h.Quantile(0.5) != math.MaxInt64 {
		t.Fatalf("max int64: %d", h.Quantile(0.5))
	}
}

func TestCDFIsMonotoneAndEndsAtOne(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	for v := range int64(10_000) {
		h.Record(v * v)
	}
	pts := h.CDF()
	if len(pts) == 0 || pts[len(pts)-1].Fraction != 1 || pts[len(pts)-1].Value != time.Duration(h.Max()) {
		t.Fatalf("CDF end: %+v", pts[len(pts)-1])
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].Value <= pts[i-1].Value || pts[i].Fraction <= pts[i-1].Fraction {
			t.Fatalf("CDF not increasing at %d: %+v then %+v", i, pts[i-1], pts[i])
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	v := int64(12345)
	for b.Loop() {
		h.Record(v)
		v = v*31 + 7&(1<<40-1)
	}
}
