package codec

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestFreeRingOrderAndBounds: the ring hands messages back oldest first,
// refuses a release when full and an acquire when empty, lap after lap.
func TestFreeRingOrderAndBounds(t *testing.T) {
	t.Parallel()
	r := newFreeRing()
	msgs := make([]*Message, freeRingSize+1)
	for i := range msgs {
		msgs[i] = new(Message)
	}
	for lap := range 3 {
		if m := r.get(); m != nil {
			t.Fatalf("lap %d: get from an empty ring returned a message", lap)
		}
		for i, m := range msgs[:freeRingSize] {
			if !r.put(m) {
				t.Fatalf("lap %d: put %d of %d refused", lap, i, freeRingSize)
			}
		}
		if r.put(msgs[freeRingSize]) {
			t.Fatalf("lap %d: a full ring took one more", lap)
		}
		for i, want := range msgs[:freeRingSize] {
			if m := r.get(); m != want {
				t.Fatalf("lap %d: get %d returned %p, want %p", lap, i, m, want)
			}
		}
	}
}

// TestFreeRingConcurrent: releasers and acquirers on several goroutines;
// every message comes out exactly once, from the ring or, when the ring
// refused it, from the overflow it went to instead.
func TestFreeRingConcurrent(t *testing.T) {
	t.Parallel()
	const releasers, acquirers, each = 4, 4, 5000
	r := newFreeRing()
	var mu sync.Mutex
	seen := make(map[*Message]int, releasers*each)
	count := func(ms []*Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			seen[m]++
		}
	}
	var released, acquiring sync.WaitGroup
	for range releasers {
		released.Add(1)
		go func() {
			defer released.Done()
			var refused []*Message
			for range each {
				if m := new(Message); !r.put(m) {
					refused = append(refused, m)
				}
			}
			count(refused)
		}()
	}
	done := make(chan struct{})
	for range acquirers {
		acquiring.Add(1)
		go func() {
			defer acquiring.Done()
			var got []*Message
			for {
				if m := r.get(); m != nil {
					got = append(got, m)
					continue
				}
				select {
				case <-done:
					count(got)
					return
				default:
					runtime.Gosched()
				}
			}
		}()
	}
	released.Wait()
	close(done)
	acquiring.Wait()
	var rest []*Message
	for m := r.get(); m != nil; m = r.get() {
		rest = append(rest, m)
	}
	count(rest)
	if len(seen) != releasers*each {
		t.Errorf("%d distinct messages came out, want %d", len(seen), releasers*each)
	}
	for _, n := range seen {
		if n != 1 {
			t.Fatalf("a message came out %d times", n)
		}
	}
}

// TestFreeRingDrainsOnGC: each garbage collection hands what the ring
// holds to messagePool, so an idle process keeps no more than sync.Pool
// alone would.
func TestFreeRingDrainsOnGC(t *testing.T) {
	drained := func(when string) {
		t.Helper()
		runtime.GC()
		deadline := time.Now().Add(5 * time.Second)
		for free.enq.Load() != free.deq.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the ring still holds %d messages 5 s after a collection", when, free.enq.Load()-free.deq.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	drained("first collection")
	for cycle := range 2 {
		ReleaseMessage(new(Message))
		if free.enq.Load() == free.deq.Load() {
			t.Fatalf("cycle %d: the released message is not in the ring", cycle)
		}
		drained(fmt.Sprintf("cycle %d", cycle))
	}
}
