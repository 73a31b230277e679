//go:build !race

package bench

import "testing"

func TestAllocsHistogramRecord(t *testing.T) {
	h := NewHistogram()
	v := int64(1)
	if n := testing.AllocsPerRun(1000, func() {
		h.Record(v)
		v = v*3 + 1
	}); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
