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

// TestFreeRingsTakeFromOtherProcessors: an acquire finds a message in any
// processor's ring, its own or another's, and rounds the count of rings up
// to a power of two.
func TestFreeRingsTakeFromOtherProcessors(t *testing.T) {
	t.Parallel()
	rs := newFreeRings(3)
	if len(rs.rings) != 4 || rs.mask != 3 {
		t.Fatalf("%d rings under mask %d for 3 processors, want 4 under 3", len(rs.rings), rs.mask)
	}
	want := map[*Message]bool{}
	for _, r := range rs.rings {
		m := new(Message)
		r.put(m)
		want[m] = true
	}
	for range len(rs.rings) {
		m := rs.get()
		if !want[m] {
			t.Fatalf("get returned %p, not one of the messages put", m)
		}
		delete(want, m)
	}
	if m := rs.get(); m != nil {
		t.Fatal("get from empty rings returned a message")
	}
	m := new(Message)
	if !rs.local().put(m) || rs.get() != m {
		t.Error("a message put in the local ring was not the one got back")
	}
}

// TestFreeRingDrainsOnGC: each garbage collection hands what the rings
// hold to messagePool, whose own policy then applies.
func TestFreeRingDrainsOnGC(t *testing.T) {
	drained := func(when string) {
		t.Helper()
		runtime.GC()
		deadline := time.Now().Add(5 * time.Second)
		for held() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the rings still hold %d messages 5 s after a collection", when, held())
			}
			time.Sleep(time.Millisecond)
		}
	}
	drained("first collection")
	for cycle := range 2 {
		ReleaseMessage(new(Message))
		if held() == 0 {
			t.Fatalf("cycle %d: the released message is not in a ring", cycle)
		}
		drained(fmt.Sprintf("cycle %d", cycle))
	}
}

// held counts the messages in free's rings.
func held() (n uint64) {
	for _, r := range free.rings {
		n += r.enq.Load() - r.deq.Load()
	}
	return n
}

// TestReleaseMessages: each message is readied as ReleaseMessage readies
// one (reset unless self-contained, an oversized scratch dropped), and nil
// entries are skipped.
func TestReleaseMessages(t *testing.T) {
	plain := &Message{Task: []byte("tasks.add")}
	big := &Message{scratch: make([]byte, 0, maxPooledScratch+1)}
	big.MarkSelfContained()
	big.Task = big.Own([]byte("tasks.big"))
	own := new(Message)
	own.MarkSelfContained()
	own.Task = []byte("tasks.own")
	ReleaseMessages([]*Message{plain, nil, big, own})
	if plain.Task != nil {
		t.Errorf("a message not marked self-contained kept Task %q", plain.Task)
	}
	if big.Task != nil || big.scratch != nil {
		t.Errorf("an oversized scratch was kept: Task %q, cap(scratch) %d", big.Task, cap(big.scratch))
	}
	if string(own.Task) != "tasks.own" {
		t.Errorf("a self-contained message was cleared on release: Task %q", own.Task)
	}
}
