package timelimit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Tracking the limits of 10k concurrent runs: one Tracker against one
// time.AfterFunc per limit (two per run: soft and hard). Run with
//
//	go test -run '^$' -bench . -benchmem ./timelimit
//
// Each op ends one run and starts another, so 10k stay in flight.

const inFlight = 10000

var benchLimits = Limits{Soft: 30 * time.Second, Hard: 60 * time.Second}

func BenchmarkTrackDone10k(b *testing.B) {
	tr := New(time.Millisecond)
	tr.Start()
	defer tr.Stop()
	target := new(nopTarget)
	ring := make([]Handle, inFlight)
	for i := range ring {
		ring[i] = tr.Track(benchLimits, target)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ring[i].Done()
		ring[i] = tr.Track(benchLimits, target)
		i = (i + 1) % inFlight
	}
	b.StopTimer()
	for _, h := range ring {
		h.Done()
	}
}

func BenchmarkAfterFunc10k(b *testing.B) {
	f := func() {}
	type pair struct{ soft, hard *time.Timer }
	ring := make([]pair, inFlight)
	for i := range ring {
		ring[i] = pair{time.AfterFunc(benchLimits.Soft, f), time.AfterFunc(benchLimits.Hard, f)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ring[i].soft.Stop()
		ring[i].hard.Stop()
		ring[i] = pair{time.AfterFunc(benchLimits.Soft, f), time.AfterFunc(benchLimits.Hard, f)}
		i = (i + 1) % inFlight
	}
	b.StopTimer()
	for _, p := range ring {
		p.soft.Stop()
		p.hard.Stop()
	}
}

func BenchmarkTrackDone10kParallel(b *testing.B) {
	tr := New(time.Millisecond)
	tr.Start()
	defer tr.Stop()
	target := new(nopTarget)
	var mu sync.Mutex
	var all []Handle
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ring := make([]Handle, inFlight/2)
		for i := range ring {
			ring[i] = tr.Track(benchLimits, target)
		}
		i := 0
		for pb.Next() {
			ring[i].Done()
			ring[i] = tr.Track(benchLimits, target)
			i = (i + 1) % len(ring)
		}
		mu.Lock()
		all = append(all, ring...)
		mu.Unlock()
	})
	b.StopTimer()
	for _, h := range all {
		h.Done()
	}
}

func BenchmarkAfterFunc10kParallel(b *testing.B) {
	f := func() {}
	var mu sync.Mutex
	var all []*time.Timer
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ring := make([]*time.Timer, inFlight) // soft and hard of inFlight/2 runs
		for i := range ring {
			ring[i] = time.AfterFunc(benchLimits.Hard, f)
		}
		i := 0
		for pb.Next() {
			ring[i].Stop()
			ring[i+1].Stop()
			ring[i] = time.AfterFunc(benchLimits.Soft, f)
			ring[i+1] = time.AfterFunc(benchLimits.Hard, f)
			i = (i + 2) % len(ring)
		}
		mu.Lock()
		all = append(all, ring...)
		mu.Unlock()
	})
	b.StopTimer()
	for _, t := range all {
		t.Stop()
	}
}

// BenchmarkTaskBoundary is the whole per-run cost the engine pays for a task
// with limits when it gives the task a context of its own: WithCancelCause,
// Track, Done, cancel (a run that ends in time).
func BenchmarkTaskBoundary(b *testing.B) {
	tr := New(time.Millisecond)
	tr.Start()
	defer tr.Stop()
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	run := new(exampleRun)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancelCause(parent)
		run.cancel = cancel
		h := tr.Track(benchLimits, run)
		_ = ctx
		h.Done()
		cancel(nil)
	}
}

// nopTarget is a pooled-pointer-style Target, as the engine's run state is.
type nopTarget struct{ calls int }

func (n *nopTarget) TimeLimitExceeded(Limit) { n.calls++ }

// exampleRun is the shape the engine's per-run state takes as a Target.
type exampleRun struct {
	cancel context.CancelCauseFunc
}

func (r *exampleRun) TimeLimitExceeded(l Limit) { r.cancel(l.Err()) }
