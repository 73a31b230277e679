package memory

import (
	"unsafe"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/prefetch"
)

// ring is a growable FIFO of messages. Its length is a power of two, so
// that positions wrap with a mask, not a division. It is not safe for
// concurrent use.
type ring struct {
	buf  []*codec.Message
	head int
	n    int
}

func (r *ring) len() int { return r.n }

// at returns the index of the i-th message from the front.
func (r *ring) at(i int) int { return (r.head + i) & (len(r.buf) - 1) }

func (r *ring) grow() {
	size := max(16, 2*len(r.buf))
	buf := make([]*codec.Message, size)
	for i := range r.n {
		buf[i] = r.buf[r.at(i)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring) pushBack(m *codec.Message) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[r.at(r.n)] = m
	r.n++
}

func (r *ring) pushFront(m *codec.Message) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = r.at(len(r.buf) - 1)
	r.buf[r.head] = m
	r.n++
}

func (r *ring) popFront() *codec.Message {
	m := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = r.at(1)
	r.n--
	return m
}

// popFrontInto moves up to len(dst) messages from the front into dst, in
// order, and returns how many it moved.
func (r *ring) popFrontInto(dst []*codec.Message) int {
	k := min(len(dst), r.n)
	for done := 0; done < k; {
		// The messages up to the end of buf, then those from its start.
		part := r.buf[r.head:min(len(r.buf), r.head+k-done)]
		copy(dst[done:], part)
		clear(part)
		done += len(part)
		r.head = r.at(len(part))
	}
	r.n -= k
	return k
}

// prefetchAhead is how many of the messages next in line a take asks the
// processor to load: the next take's worth at concurrency 2, whose
// prefetch window is 8 (see stage). Asking for all of a take's room (up
// to 256 at concurrency 64) measured no better at concurrency 64.
const prefetchAhead = 8

// messageLines is how many cache lines a message spans.
const messageLines = (int(unsafe.Sizeof(codec.Message{})) + 63) / 64

// prefetch asks the processor to load the messages next in line, up to k
// (and prefetchAhead) of them, whole: a worker reads most of a message's
// lines as it routes and runs it.
func (r *ring) prefetch(k int) {
	for i := range min(k, r.n, prefetchAhead) {
		prefetch.Lines(unsafe.Pointer(r.buf[r.at(i)]), messageLines)
	}
}
