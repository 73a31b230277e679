package beat

import (
	"context"
	"testing"
	"time"
)

// BenchmarkServiceStepIdle is a wake-up with nothing due: lease still
// fresh, every entry checked.
func BenchmarkServiceStepIdle(b *testing.B) {
	clk := &fakeClock{t0}
	entries := make([]*Entry, 100)
	for i := range entries {
		entries[i] = &Entry{Name: "e" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Task: "t", Schedule: every(b, time.Hour)}
	}
	s, err := NewService(&recorder{}, ServiceConfig{Entries: entries, LeaseTTL: time.Hour, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s.now = clk.now
	if err := s.restore(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s.step(ctx, t0)
	b.ReportAllocs()
	for b.Loop() {
		s.step(ctx, t0.Add(time.Second))
	}
}

// BenchmarkServiceStepSend claims and sends one run per iteration on the
// memory locker (a fake sender).
func BenchmarkServiceStepSend(b *testing.B) {
	clk := &fakeClock{t0}
	l := NewMemoryLocker()
	l.now = clk.now
	s, err := NewService(&recorder{}, ServiceConfig{Locker: l, LeaseTTL: time.Hour, Logger: quiet,
		Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(b, time.Second)}}})
	if err != nil {
		b.Fatal(err)
	}
	s.now = clk.now
	if err := s.restore(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		clk.t = clk.t.Add(time.Second)
		s.step(ctx, clk.t)
	}
}

// BenchmarkRedisLockerClaim is one fenced claim round trip to the real
// Redis.
func BenchmarkRedisLockerClaim(b *testing.B) {
	l, _, _ := newRedisLocker(b)
	ctx := context.Background()
	if _, err := l.Acquire(ctx, "tok", time.Hour); err != nil {
		b.Fatal(err)
	}
	tick := t0
	b.ReportAllocs()
	for b.Loop() {
		tick = tick.Add(time.Second)
		if err := l.Claim(ctx, "tok", "e", Record{Tick: tick, LastRunAt: tick, TotalRunCount: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
