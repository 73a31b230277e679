//go:build !race

package amqp

import (
	"testing"
	"time"
)

// TestAllocsAckTracker: settling deliveries and coalescing their acks
// allocates nothing in steady state (the slices are reused).
func TestAllocsAckTracker(t *testing.T) {
	var tr ackTracker
	send := func(uint64, bool) error { return nil }
	next := uint64(1)
	round := func() {
		// 64 deliveries finished out of order, one flush.
		for i := range uint64(64) {
			tr.settle(next+(i^1), true)
		}
		next += 64
		tr.flush(time.Time{}, false, time.Second, 64, send)
	}
	round()
	if n := testing.AllocsPerRun(1000, round); n != 0 {
		t.Fatalf("%v allocations per 64 acks, want 0", n)
	}
}
