package ratelimit

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func mustParse(t testing.TB, s string) Rate {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const ms = int64(time.Millisecond)

func TestBucketCapacityOne(t *testing.T) {
	t.Parallel()
	b := NewBucket(mustParse(t, "10/s"), 1) // one token per 100ms
	steps := []struct {
		now   int64
		allow bool
		delay time.Duration // Delay after the Allow
	}{
		{0, true, 100 * time.Millisecond},      // starts full
		{1 * ms, false, 99 * time.Millisecond}, // no burst
		{99 * ms, false, time.Millisecond},
		{100 * ms, true, 100 * time.Millisecond},
		{250 * ms, true, 100 * time.Millisecond}, // refill is capped at one token
		{300 * ms, false, 50 * time.Millisecond},
		{5000 * ms, true, 100 * time.Millisecond},
		{5000 * ms, false, 100 * time.Millisecond},
	}
	for i, s := range steps {
		if got := b.Allow(s.now); got != s.allow {
			t.Errorf("step %d: Allow(%dms) = %v, want %v", i, s.now/ms, got, s.allow)
		}
		if got := b.Delay(s.now); got != s.delay {
			t.Errorf("step %d: Delay = %v, want %v", i, got, s.delay)
		}
	}
}

func TestBucketReserveQueuesInOrder(t *testing.T) {
	t.Parallel()
	b := NewBucket(mustParse(t, "100/s"), 1)
	now := 7 * ms
	for i := range 5 {
		if got, want := b.Reserve(now), time.Duration(i)*10*time.Millisecond; got != want {
			t.Fatalf("reservation %d: wait %v, want %v", i, got, want)
		}
	}
	// The queue drains at the rate: 25ms later the 6th caller waits 50-25.
	if got := b.Reserve(now + 25*ms); got != 25*time.Millisecond {
		t.Errorf("wait = %v, want 25ms", got)
	}
	// Allow never jumps the queue.
	if b.Allow(now + 45*ms) {
		t.Error("Allow took a token promised to a reserved caller")
	}
	if !b.Allow(now + 60*ms) {
		t.Error("Allow refused once the reservations were paid off")
	}
}

func TestBucketCapacityBurst(t *testing.T) {
	t.Parallel()
	b := NewBucket(mustParse(t, "1/s"), 3)
	for i := range 3 {
		if !b.Allow(10 * ms) {
			t.Fatalf("token %d of a full bucket of 3 refused", i)
		}
	}
	if b.Allow(10 * ms) {
		t.Fatal("4th token of a bucket of 3 admitted")
	}
	if got := b.Reserve(10 * ms); got != time.Second {
		t.Errorf("wait = %v, want 1s", got)
	}
	if r, c := b.Rate(); r != mustParse(t, "1/s") || c != 3 {
		t.Errorf("Rate() = %v, %d", r, c)
	}
}

// refBucket is kombu's TokenBucket algorithm (continuous refill, capped at
// capacity) in exact integer arithmetic: tokens are counted in nanoseconds
// of refill, one token = interval. It refreshes its timestamp on every read,
// that is, without kombu's stale-timestamp quirk (see the package doc).
type refBucket struct {
	interval, capacity, tokens, stamp int64
}

func (r *refBucket) canConsume(now int64) bool {
	r.tokens = min(r.capacity*r.interval, r.tokens+now-r.stamp)
	r.stamp = now
	if r.tokens >= r.interval {
		r.tokens -= r.interval
		return true
	}
	return false
}

// TestBucketMatchesTokenBucket checks Allow against the token-bucket model
// on random arrival sequences, for several capacities.
func TestBucketMatchesTokenBucket(t *testing.T) {
	t.Parallel()
	for capacity := int64(1); capacity <= 4; capacity++ {
		rng := rand.New(rand.NewPCG(1, uint64(capacity)))
		b := NewBucket(mustParse(t, "100/s"), int(capacity))
		ref := &refBucket{interval: 10 * ms, capacity: capacity, tokens: capacity * 10 * ms}
		now := int64(0)
		admitted := 0
		for i := range 20000 {
			now += rng.Int64N(12 * ms)
			got, want := b.Allow(now), ref.canConsume(now)
			if got != want {
				t.Fatalf("capacity %d, arrival %d at %dns: Allow = %v, token bucket = %v", capacity, i, now, got, want)
			}
			if got {
				admitted++
			}
		}
		if admitted == 0 || admitted == 20000 {
			t.Fatalf("capacity %d: degenerate sequence, %d admitted", capacity, admitted)
		}
	}
}

func TestBucketSetRefillsAndKeepsReservations(t *testing.T) {
	t.Parallel()
	b := NewBucket(mustParse(t, "1/h"), 1)
	if b.Reserve(0) != 0 || b.Reserve(0) != time.Hour {
		t.Fatal("unexpected waits at 1/h")
	}
	b.Set(mustParse(t, "10/s"), 1)
	if got := b.Reserve(ms); got != 0 {
		t.Errorf("after Set the bucket should be full, wait %v", got)
	}
	if got := b.Reserve(ms); got != 100*time.Millisecond {
		t.Errorf("new rate not applied: wait %v, want 100ms", got)
	}
	b.Set(Unlimited, 1)
	for range 10 {
		if !b.Allow(2 * ms) {
			t.Fatal("unlimited bucket refused")
		}
	}
}

func TestBucketZeroValueIsUnlimited(t *testing.T) {
	t.Parallel()
	var b Bucket
	if b.Reserve(0) != 0 || !b.Allow(0) || b.Delay(0) != 0 {
		t.Error("zero Bucket limits")
	}
	if r, c := b.Rate(); !r.Unlimited() || c != 1 {
		t.Errorf("zero Bucket Rate() = %v, %d", r, c)
	}
}

// TestBucketSlowRateSaturates guards the overflow of the due time when a
// very slow rate is reserved far ahead.
func TestBucketSlowRateSaturates(t *testing.T) {
	t.Parallel()
	b := NewBucket(mustParse(t, "0.00000001/s"), 1) // one token per ~3.2 years
	prev := time.Duration(-1)
	for i := range 100 {
		w := b.Reserve(0)
		if w < prev || w < 0 {
			t.Fatalf("reservation %d: wait %v after %v", i, w, prev)
		}
		prev = w
	}
	if prev != math.MaxInt64 {
		t.Errorf("last wait %v, want saturation at %v", prev, time.Duration(math.MaxInt64))
	}
}

// TestBucketConcurrentReserveHandsOutEachSlotOnce: callers racing at the same
// instant must get exactly the waits 0, I, 2I, ... between them.
func TestBucketConcurrentReserveHandsOutEachSlotOnce(t *testing.T) {
	t.Parallel()
	const goroutines, each = 8, 500
	b := NewBucket(mustParse(t, "1000/s"), 1)
	waits := make([][]time.Duration, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				waits[g] = append(waits[g], b.Reserve(5*ms))
			}
		})
	}
	wg.Wait()
	all := slices.Concat(waits...)
	slices.Sort(all)
	for i, w := range all {
		if want := time.Duration(i) * time.Millisecond; w != want {
			t.Fatalf("sorted wait %d = %v, want %v", i, w, want)
		}
	}
}

func TestNowIsMonotonic(t *testing.T) {
	t.Parallel()
	a := Now()
	b := Now()
	if a < 0 || b < a {
		t.Errorf("Now went %d then %d", a, b)
	}
}

func TestAtMatchesNow(t *testing.T) {
	t.Parallel()
	a := Now()
	at := At(time.Now())
	b := Now()
	if at < a || at > b {
		t.Errorf("At(time.Now()) = %d, outside the Now readings around it [%d, %d]", at, a, b)
	}
}
