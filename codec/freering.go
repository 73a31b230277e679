package codec

import (
	"runtime"
	"sync/atomic"
)

// freeRing is where released messages wait to be acquired again, ahead of
// messagePool: a bounded multi-producer, multi-consumer FIFO (Dmitry
// Vyukov's bounded queue). Releasers claim cells on one counter and
// acquirers on another, each on a cache line of its own, so a worker
// releasing on one processor and a producer acquiring on another meet only
// on the cells, four to a line, and never on a shared word.
//
// sync.Pool keeps both ends of a processor's queue in one word: a
// producer stealing a message from the worker's processor and the worker
// releasing the next one write the same line, once per message. With the
// ring in front of it, engine's BenchmarkEngineMemoryNoop ran c=2 x0.905
// near and x0.770 far, c=64 x0.882 near and x0.895 far (medians of
// per-pair ratios, 66 interleaved pairs near and 9 far). Rings of 2048,
// 8192 and 16384 cells measured about as well; one of 1024, smaller than
// the benchmark's backlog, was slower far (c=64 x1.37): the overflow
// mixes the two pools.
//
// What it costs:
//   - The ring holds up to freeRingSize released messages (3 MiB at 768
//     bytes each, up to 64 KiB more each with their scratch buffers, see
//     maxPooledScratch), as sync.Pool would until the next collection.
//     Each garbage collection empties the ring into messagePool
//     (drainOnGC), whose own policy then applies: an idle process frees
//     them one collection later than with sync.Pool alone.
//   - It is one queue for the whole process, where sync.Pool has one per
//     processor: a release or acquire that loses a race for its cell a few
//     times in a row goes to messagePool instead of waiting, so many
//     processors contending spill to sync.Pool rather than queue on the
//     counters.
type freeRing struct {
	_     [64]byte
	enq   atomic.Uint64 // next cell to release into
	_     [56]byte
	deq   atomic.Uint64 // next cell to acquire from
	_     [56]byte
	cells [freeRingSize]freeCell
}

// freeCell holds a message when seq is its position plus 1, and is free
// for the release at position seq otherwise.
type freeCell struct {
	seq atomic.Uint64
	m   *Message
}

// freeRingSize is the ring's capacity: enough for the engine's benchmark
// backlog (4096 queued) and its prefetch windows.
const freeRingSize = 4096

// freeRingTries is how many times an operation that lost its cell to
// another goroutine tries the next one before falling back to messagePool.
const freeRingTries = 4

var free = newFreeRing()

func newFreeRing() *freeRing {
	r := new(freeRing)
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
	}
	return r
}

// put queues m and reports whether it did: false when the ring is full or
// other releasers kept winning the cell.
func (r *freeRing) put(m *Message) bool {
	pos := r.enq.Load()
	for range freeRingTries {
		c := &r.cells[pos&(freeRingSize-1)]
		switch d := int64(c.seq.Load() - pos); {
		case d == 0:
			if r.enq.CompareAndSwap(pos, pos+1) {
				c.m = m
				c.seq.Store(pos + 1)
				return true
			}
		case d < 0: // the cell still holds the message of a lap before: full
			return false
		}
		pos = r.enq.Load()
	}
	return false
}

// get returns the message released longest ago, or nil when the ring is
// empty or other acquirers kept winning the cell.
func (r *freeRing) get() *Message {
	pos := r.deq.Load()
	for range freeRingTries {
		c := &r.cells[pos&(freeRingSize-1)]
		switch d := int64(c.seq.Load() - (pos + 1)); {
		case d == 0:
			if r.deq.CompareAndSwap(pos, pos+1) {
				m := c.m
				c.m = nil
				c.seq.Store(pos + freeRingSize)
				return m
			}
		case d < 0: // not released yet: empty
			return nil
		}
		pos = r.deq.Load()
	}
	return nil
}

// drain moves the ring's messages to messagePool.
func (r *freeRing) drain() {
	for range freeRingSize {
		m := r.get()
		if m == nil {
			return
		}
		messagePool.Put(m)
	}
}

// gcSentinel is an object that lives for one garbage collection cycle.
type gcSentinel struct{ _ *byte }

// drainOnGC empties the ring into messagePool after the next garbage
// collection, and again after each one following.
func drainOnGC() {
	runtime.AddCleanup(new(gcSentinel), func(struct{}) {
		free.drain()
		drainOnGC()
	}, struct{}{})
}

func init() { drainOnGC() }
