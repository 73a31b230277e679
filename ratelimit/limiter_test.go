package ratelimit

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestLimiterHoldsRateWhileOtherTaskUnthrottled is the proof: with
// "tasks.limited" at 100/s and "tasks.free" unlimited, both offered 1000
// tasks a second for 3 simulated seconds, the limited type starts within 10%
// of 300 tasks and the free type starts every task at once. The engine's use
// is modelled: a task whose Reserve returns a wait starts when it is over.
func TestLimiterHoldsRateWhileOtherTaskUnthrottled(t *testing.T) {
	t.Parallel()
	var l Limiter
	l.Set("tasks.limited", mustParse(t, "100/s"))
	const horizon = 3 * int64(time.Second)
	limitedStarts, freeStarts, freeDelayed, offered := 0, 0, 0, 0
	for now := int64(0); now < horizon; now += ms {
		offered++
		if start := now + int64(l.Reserve("tasks.limited", now)); start < horizon {
			limitedStarts++
		}
		if l.Reserve("tasks.free", now) != 0 {
			freeDelayed++
		}
		freeStarts++
	}
	if limitedStarts < 270 || limitedStarts > 330 {
		t.Errorf("limited task started %d times in 3s at 100/s, want 300 ± 10%%", limitedStarts)
	}
	if freeDelayed != 0 || freeStarts != offered {
		t.Errorf("free task: %d of %d delayed", freeDelayed, offered)
	}
	t.Logf("3 simulated seconds: limited %d starts of %d offered, free %d of %d", limitedStarts, offered, freeStarts, offered)
}

// TestLimiterAllowLoopHoldsRate models Celery's own consumer instead: a FIFO
// of pending requests retried when Delay says a token is due.
func TestLimiterAllowLoopHoldsRate(t *testing.T) {
	t.Parallel()
	var l Limiter
	l.Set("t", mustParse(t, "100/s"))
	const horizon = 3 * int64(time.Second)
	pending, started := 0, 0
	retryAt := int64(0)
	for now := int64(0); now < horizon; now += ms / 4 {
		pending++
		if now < retryAt {
			continue
		}
		for pending > 0 && l.Allow("t", now) {
			pending--
			started++
		}
		retryAt = now + int64(l.Bucket("t").Delay(now))
	}
	if started < 270 || started > 330 {
		t.Errorf("started %d in 3s at 100/s, want 300 ± 10%%", started)
	}
}

// TestLimiterRealClockNeverExceedsRate drives the limiter from several
// goroutines with the real clock and checks the start times it hands out:
// whatever the scheduling, no two starts are closer than the interval, so no
// one-second window holds more than 100 starts. It asserts counts, not
// durations.
func TestLimiterRealClockNeverExceedsRate(t *testing.T) {
	t.Parallel()
	var l Limiter
	l.Set("tasks.limited", mustParse(t, "100/s"))
	const goroutines, each = 4, 75
	starts := make([][]int64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				now := Now()
				starts[g] = append(starts[g], now+int64(l.Reserve("tasks.limited", now)))
				if !l.Allow("tasks.other", now) {
					t.Error("unlimited task refused")
				}
			}
		})
	}
	wg.Wait()
	all := slices.Concat(starts...)
	slices.Sort(all)
	if len(all) != goroutines*each {
		t.Fatalf("%d starts, want %d", len(all), goroutines*each)
	}
	for i := 100; i < len(all); i++ {
		if all[i]-all[i-100] < int64(time.Second) {
			t.Fatalf("starts %d..%d fall within one second: more than 100/s", i-100, i)
		}
	}
}

func TestLimiterRuntimeChanges(t *testing.T) {
	t.Parallel()
	var l Limiter
	if !l.Allow("a", 0) || l.Reserve("a", 0) != 0 || !l.Rate("a").Unlimited() {
		t.Fatal("zero Limiter limits")
	}
	l.Set("never-limited", Unlimited)
	if len(l.Limits()) != 0 {
		t.Fatal("lifting the limit of an unknown task added it")
	}
	b := l.Bucket("a") // resolved once, as the engine does
	if b.Reserve(0) != 0 || b.Reserve(0) != 0 {
		t.Fatal("new bucket is not unlimited")
	}
	l.Set("a", mustParse(t, "10/s"))
	if l.Bucket("a") != b {
		t.Fatal("Set replaced the bucket pointer")
	}
	if b.Reserve(ms) != 0 || b.Reserve(ms) != 100*time.Millisecond {
		t.Error("new rate not seen through the resolved bucket")
	}
	l.Set("b", mustParse(t, "5/m"))
	want := map[string]Rate{"a": mustParse(t, "10/s"), "b": mustParse(t, "5/m")}
	if got := l.Limits(); !maps.Equal(got, want) {
		t.Errorf("Limits() = %v, want %v", got, want)
	}
	l.Set("a", Unlimited)
	if !l.Rate("a").Unlimited() || !b.Allow(2*ms) || !b.Allow(2*ms) {
		t.Error("limit not lifted")
	}
	if got := l.Limits(); len(got) != 1 || got["b"] != want["b"] {
		t.Errorf("Limits() = %v after lifting a", got)
	}
}

// TestLimiterConcurrentSetAndReserve runs writers and readers together; run
// it with -race.
func TestLimiterConcurrentSetAndReserve(t *testing.T) {
	t.Parallel()
	var l Limiter
	rates := []Rate{mustParse(t, "10/s"), mustParse(t, "1/m"), Unlimited}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				name := fmt.Sprintf("t%d", i%7)
				switch g {
				case 0:
					l.Set(name, rates[i%len(rates)])
				case 1:
					l.Bucket(name).Set(rates[(i+1)%len(rates)], 2)
				default:
					if w := l.Reserve(name, int64(i)*ms); w < 0 {
						t.Errorf("negative wait %v", w)
					}
					l.Allow(name, int64(i)*ms)
					_ = l.Limits()
				}
			}
		})
	}
	wg.Wait()
	for i := range 7 {
		name := fmt.Sprintf("t%d", i)
		if l.Bucket(name) != l.Bucket(name) {
			t.Fatalf("bucket of %s not stable", name)
		}
	}
}
