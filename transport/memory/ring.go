package memory

import "github.com/celerity-go/celerity/codec"

// ring is a growable FIFO of messages. It is not safe for concurrent use.
type ring struct {
	buf  []*codec.Message
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) grow() {
	size := max(16, 2*len(r.buf))
	buf := make([]*codec.Message, size)
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring) pushBack(m *codec.Message) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = m
	r.n++
}

func (r *ring) pushFront(m *codec.Message) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = m
	r.n++
}

func (r *ring) popFront() *codec.Message {
	m := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return m
}
