package ratelimit

import (
	"math"
	"sync/atomic"
	"time"
)

// epoch anchors Now; reading the clock once at init starts nothing.
var epoch = time.Now()

// Now returns monotonic nanoseconds since the package was initialised: a
// clock suitable for the now argument of Bucket and Limiter methods.
func Now() int64 { return int64(time.Since(epoch)) }

// At is Now for a time already read (no clock read): a caller handling a
// batch reads the clock once for all of it.
func At(t time.Time) int64 { return int64(t.Sub(epoch)) }

// Bucket is a token bucket: kombu's TokenBucket, kept as the time at which
// the next token is due (the generic cell rate algorithm, which admits
// exactly what a token bucket of the same rate and capacity admits).
//
// A Bucket is safe for concurrent use; Reserve and Allow are lock-free
// (a compare-and-swap loop on one word) and do not allocate. The zero Bucket
// is unlimited.
type Bucket struct {
	// tat is the "theoretical arrival time": when the tokens granted so far
	// are paid off (the bucket is full again). A token can be taken at now
	// iff tat-tol <= now; with capacity 1 (tol 0), tat is simply the time the
	// next token is due.
	tat atomic.Int64
	cfg atomic.Pointer[bucketConfig]
}

// bucketConfig is immutable once published, so a reader sees a rate and its
// tolerance that belong together.
type bucketConfig struct {
	rate     Rate
	capacity int
	interval int64 // ns per token; 0 = unlimited
	tol      int64 // (capacity-1)*interval: how far ahead next may run
}

// NewBucket returns a full bucket refilled at r that holds up to capacity
// tokens (values below 1 mean 1, Celery's capacity).
func NewBucket(r Rate, capacity int) *Bucket {
	b := new(Bucket)
	b.Set(r, capacity)
	return b
}

// Set changes the bucket's rate and capacity and refills it, as Celery does
// when a rate limit changes (it replaces the bucket with a new, full one).
// Waits already returned by Reserve stand: those tasks keep the slots they
// were given, as requests already queued in Celery's old bucket keep draining.
func (b *Bucket) Set(r Rate, capacity int) {
	capacity = max(capacity, 1)
	c := &bucketConfig{rate: r, capacity: capacity}
	if !r.Unlimited() {
		c.interval = int64(r.Interval())
		if c.interval > math.MaxInt64/int64(capacity) {
			c.tol = math.MaxInt64 / 2
		} else {
			c.tol = int64(capacity-1) * c.interval
		}
	}
	b.cfg.Store(c)
	b.tat.Store(0)
}

// Rate returns the bucket's current rate and capacity.
func (b *Bucket) Rate() (r Rate, capacity int) {
	c := b.cfg.Load()
	if c == nil {
		return Unlimited, 1
	}
	return c.rate, c.capacity
}

// Reserve takes the next token of b and returns how long the caller must wait
// before using it: 0 when a token was available at now. The token is taken
// either way, so successive callers receive increasing waits in call order
// and a rate-limited task is delayed, never dropped. The caller must not ask
// again when the wait is over; it owns its token.
func (b *Bucket) Reserve(now int64) time.Duration {
	c := b.cfg.Load()
	if c == nil || c.interval == 0 {
		return 0
	}
	for {
		tat := b.tat.Load()
		if b.tat.CompareAndSwap(tat, addSat(max(tat, now), c.interval)) {
			return time.Duration(max(tat-c.tol-now, 0))
		}
	}
}

// Allow takes a token if one is available at now and reports whether it did.
// A refused caller has reserved nothing.
func (b *Bucket) Allow(now int64) bool {
	c := b.cfg.Load()
	if c == nil || c.interval == 0 {
		return true
	}
	for {
		tat := b.tat.Load()
		if tat-c.tol > now {
			return false
		}
		if b.tat.CompareAndSwap(tat, addSat(max(tat, now), c.interval)) {
			return true
		}
	}
}

// Delay returns how long a caller at now would wait for a token, without
// taking one (kombu's expected_time).
func (b *Bucket) Delay(now int64) time.Duration {
	c := b.cfg.Load()
	if c == nil || c.interval == 0 {
		return 0
	}
	return time.Duration(max(b.tat.Load()-c.tol-now, 0))
}

// addSat returns a+d, or math.MaxInt64 if that overflows; d >= 0.
func addSat(a, d int64) int64 {
	if a > math.MaxInt64-d {
		return math.MaxInt64
	}
	return a + d
}
