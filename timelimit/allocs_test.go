//go:build !race

package timelimit

import (
	"testing"
	"time"
)

// TestAllocsTrackDone: with 10k runs in flight and the slab grown, tracking
// and ending a run allocates nothing.
func TestAllocsTrackDone(t *testing.T) {
	tr := New(time.Millisecond)
	tr.Start()
	defer tr.Stop()
	target := new(nopTarget)
	limits := Limits{Soft: time.Minute, Hard: 2 * time.Minute}
	ring := make([]Handle, 10000)
	for i := range ring {
		ring[i] = tr.Track(limits, target)
	}
	i := 0
	got := testing.AllocsPerRun(10000, func() {
		ring[i].Done()
		ring[i] = tr.Track(limits, target)
		i = (i + 1) % len(ring)
	})
	if got != 0 {
		t.Errorf("Track+Done: %v allocs per run, want 0", got)
	}
	for _, h := range ring {
		h.Done()
	}
}

// TestAllocsFiring: once warm, firing limits allocates nothing either.
func TestAllocsFiring(t *testing.T) {
	tr, clock := newFake(time.Millisecond)
	target := new(nopTarget)
	limits := Limits{Soft: time.Millisecond, Hard: 2 * time.Millisecond}
	got := testing.AllocsPerRun(1000, func() {
		for range 8 {
			tr.Track(limits, target)
		}
		clock.ns.Add(int64(time.Second))
		tr.expire(clock.now())
	})
	if got != 0 {
		t.Errorf("Track and fire: %v allocs per run, want 0", got)
	}
	if target.calls == 0 {
		t.Fatal("nothing fired")
	}
}
