package ratelimit

import (
	"sync/atomic"
	"testing"
)

// The allow/reserve path: run with
//
//	go test -run '^$' -bench . -benchmem ./ratelimit

func BenchmarkBucketReserve(b *testing.B) {
	bk := NewBucket(mustParse(b, "1000000/s"), 1)
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		now += 500
		bk.Reserve(now)
	}
}

func BenchmarkBucketAllow(b *testing.B) {
	bk := NewBucket(mustParse(b, "1000000/s"), 1)
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		now += 500
		bk.Allow(now)
	}
}

// BenchmarkBucketReserveParallel: every goroutine hits the same bucket, the
// worst case for the compare-and-swap loop.
func BenchmarkBucketReserveParallel(b *testing.B) {
	bk := NewBucket(mustParse(b, "1000000/s"), 1)
	var clock atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Reserve(clock.Add(500))
		}
	})
}

func BenchmarkLimiterReserve(b *testing.B) {
	l := benchLimiter(b)
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		now += 500
		l.Reserve("tasks.limited", now)
	}
}

// BenchmarkLimiterReserveParallel: goroutines alternate between a limited
// and an unlimited task name, with the real clock.
func BenchmarkLimiterReserveParallel(b *testing.B) {
	l := benchLimiter(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if i&1 == 0 {
				l.Reserve("tasks.limited", Now())
			} else {
				l.Reserve("tasks.free", Now())
			}
		}
	})
}

func BenchmarkLimiterAllowParallel(b *testing.B) {
	l := benchLimiter(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("tasks.limited", Now())
		}
	})
}

func benchLimiter(b *testing.B) *Limiter {
	l := new(Limiter)
	l.Set("tasks.limited", mustParse(b, "1000000/s"))
	for _, name := range []string{"tasks.a", "tasks.b", "tasks.c", "tasks.d"} {
		l.Set(name, mustParse(b, "10/s"))
	}
	return l
}
