//go:build !race

package ratelimit

import "testing"

func TestAllocsReserveAndAllow(t *testing.T) {
	var l Limiter
	l.Set("tasks.limited", mustParse(t, "100/s"))
	b := l.Bucket("tasks.limited")
	now := int64(0)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Bucket.Reserve", func() { now += ms; b.Reserve(now) }},
		{"Bucket.Allow", func() { now += ms; b.Allow(now) }},
		{"Bucket.Delay", func() { b.Delay(now) }},
		{"Limiter.Reserve", func() { now += ms; l.Reserve("tasks.limited", now) }},
		{"Limiter.Allow", func() { now += ms; l.Allow("tasks.limited", now) }},
		{"Limiter.Reserve unlimited", func() { l.Reserve("tasks.free", now) }},
		{"Limiter.Bucket known", func() { l.Bucket("tasks.limited") }},
		{"Now", func() { Now() }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(1000, tt.fn); got != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, got)
		}
	}
}
