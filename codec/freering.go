package codec

import (
	"runtime"
	"sync/atomic"
	_ "unsafe" // go:linkname
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
// releasing the next one write the same line, once per message. With a
// ring per processor in front of it (free), engine's
// BenchmarkEngineMemoryNoop ran c=2 x0.947 near and x0.883 far, c=64
// x0.938 near and x0.984 far (medians of per-pair ratios, 100 interleaved
// pairs near and 12 far); one ring for the process, in the same runs,
// x0.929, x0.847, x0.870 and x0.943. Rings of 2048, 8192 and 16384 cells
// measured about as well as 4096; one of 1024, smaller than the
// benchmark's backlog, was slower far (c=64 x1.37): the overflow mixes
// the two pools.
//
// What it costs:
//   - A ring holds up to freeRingSize released messages (3 MiB at 768
//     bytes each, up to 64 KiB more each with their scratch buffers, see
//     maxPooledScratch), as sync.Pool would until the next collection.
//     Each garbage collection empties the rings into messagePool
//     (drainOnGC), whose own policy then applies: an idle process frees
//     them one collection later than with sync.Pool alone.
//   - Each processor's ring is 64 KiB of cells, allocated when the
//     package is initialized (free).
//   - Finding the current processor's ring (processor) adds about 80
//     instructions to an acquire and release pair
//     (BenchmarkAcquireReleaseMessage: 508 with one ring for the process,
//     590 with one per processor, 539 with sync.Pool alone), and a ring's
//     get and put each take two locked instructions where sync.Pool's
//     private slot takes none: an acquire and release on one processor
//     cost about 6 ns more (BenchmarkAcquireReleaseMessage on one
//     processor x1.13, 10 interleaved pairs).
//   - A release or acquire that loses a race for its cell a few times in
//     a row goes to messagePool instead of waiting.
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

// free holds one ring per processor (P): a message goes to the ring of
// the processor that releases it, and an acquire looks in its own
// processor's ring first, then in the others'. One ring for the whole
// process made an acquire and release on each of two processors at once
// (BenchmarkAcquireReleaseParallel) cost 80-120 ns against sync.Pool's
// 16-27, every operation moving a counter's line between the cores.
var free = newFreeRings(runtime.GOMAXPROCS(0))

// freeRings is free's type: a power of two of rings, indexed by processor
// id under mask.
type freeRings struct {
	mask  int
	rings []*freeRing
}

func newFreeRings(procs int) *freeRings {
	n := 1
	for n < procs {
		n *= 2
	}
	rs := &freeRings{mask: n - 1, rings: make([]*freeRing, n)}
	for i := range rs.rings {
		rs.rings[i] = newFreeRing()
	}
	return rs
}

// local returns the current processor's ring.
func (rs *freeRings) local() *freeRing { return rs.rings[processor()&rs.mask] }

// get takes a message from the current processor's ring, or else from the
// first other one that has one.
func (rs *freeRings) get() *Message {
	p := processor()
	if m := rs.rings[p&rs.mask].get(); m != nil {
		return m
	}
	for i := 1; i <= rs.mask; i++ {
		if m := rs.rings[(p+i)&rs.mask].get(); m != nil {
			return m
		}
	}
	return nil
}

// drain moves every ring's messages to messagePool.
func (rs *freeRings) drain() {
	for _, r := range rs.rings {
		r.drain()
	}
}

// processor returns the id of the processor (P) the goroutine runs on: a
// hint only, since the goroutine may move right after (the rings are
// safe from any processor). GOMAXPROCS may have grown since free was
// made: ids wrap under the mask.
func processor() int {
	p := procPin()
	procUnpin()
	return p
}

// procPin and procUnpin are the runtime's, as sync.Pool uses them; the
// runtime keeps them for packages that link to them (go.dev/issue/67401).
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

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

// drainOnGC empties the rings into messagePool after the next garbage
// collection, and again after each one following.
func drainOnGC() {
	runtime.AddCleanup(new(gcSentinel), func(struct{}) {
		free.drain()
		drainOnGC()
	}, struct{}{})
}

func init() { drainOnGC() }
