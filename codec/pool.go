package codec

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"unsafe"
)

// maxPooledScratch is the largest scratch buffer a released Message keeps;
// bigger ones are dropped so one huge message does not pin memory forever.
const maxPooledScratch = 64 << 10

// messagePool recycles the messages that free (see freeRing) has no room
// for, and those free hands over at each garbage collection. In the
// engine a message is built on one processor and released on another, so
// most Gets from a sync.Pool take one from another processor's pool.
// Ways of moving released messages in batches were measured slower in
// engine's BenchmarkEngineMemoryNoop at c=2 (medians of interleaved runs):
// a sync.Pool of 32-message batches, with Acquire taking one from the
// current batch (+6 % ns/task, 11 runs: two pool operations per Acquire;
// measured again once the memory broker's queue cost one cache line per
// take instead of two, x0.90 in the VMs' near vCPU placement, 17 runs, but
// x1.39 at c=2 and x1.50 at c=64 in the far one, 6 runs; and once more,
// with batches of up to 16 from each executor's flush, near c=2 181 -> 209
// ns/task, 13 runs, the worker's take and run and the producer's fill
// each 25-50 CPU cycles per task slower); a mutex-guarded depot that an
// empty pool refills from 32 at a time (+31 %); and released messages
// linked through a field of their own onto a lock-free stack that an
// Acquire empties at once, the rest of the chain kept in a sync.Pool (+8
// to +10 %, 11-15 runs): walking the chain reads each message's link
// before using it, a load that waits for a cache line on the other core,
// where clearing a message only stores to it and the processor does not
// wait for stores.
var messagePool = sync.Pool{New: func() any { return new(Message) }}

// pooled returns a released message, from free first, or a new one.
func pooled() *Message {
	if m := free.get(); m != nil {
		return m
	}
	return messagePool.Get().(*Message)
}

// AcquireMessage returns a Reset Message from a pool. Pair it with
// ReleaseMessage. AcquireMessage and ReleaseMessage are safe for concurrent
// use; the Message itself is not.
func AcquireMessage() *Message {
	m := pooled()
	// A pooled Message is new, was Reset by ReleaseMessage, or is marked
	// self-contained and left to be cleared here (see MarkSelfContained):
	// clearing costs as much as the rest of building a message, so it is
	// done once. The price is that a write through a stale pointer after
	// ReleaseMessage is not wiped out here.
	if m.selfContained {
		m.Reset()
	}
	return m
}

// AcquireMessageToOverwrite is AcquireMessage for a producer that sets
// every exported field of the message itself, each with the value it
// wants whether or not the field already holds it. A message marked
// self-contained comes back with the exported fields it was released
// with, so the producer can skip a write that would not change a field;
// its own storage (Own, NewID) is emptied, and a message not so marked
// comes back Reset as from AcquireMessage.
//
// Clearing a pooled message writes all of its cache lines, a dozen, and
// rewriting unchanged fields writes most of them again, where a steady
// stream of like messages (one task, one route) changes only the line
// holding the id (and Tag, which a memory consumer sets). Each line
// written is one the worker's core must fetch back: engine's
// BenchmarkEngineMemoryNoop at c=2 runs x0.92 ns/task on two processors
// (11 interleaved runs), x1.00 on one, where no line changes cores.
func AcquireMessageToOverwrite() *Message {
	m := pooled()
	if len(m.scratch) > 0 {
		m.scratch = m.scratch[:0]
	}
	if m.bodyJSON != nil {
		m.bodyJSON = nil
	}
	return m
}

// SetView sets *dst to v unless it already is that view (the same memory,
// length and capacity), for a producer filling a message from
// AcquireMessageToOverwrite.
func SetView(dst *[]byte, v []byte) {
	if unsafe.SliceData(*dst) != unsafe.SliceData(v) || len(*dst) != len(v) || cap(*dst) != cap(v) {
		*dst = v
	}
}

// SetValue sets *dst to v unless it already holds v, for a producer
// filling a message from AcquireMessageToOverwrite.
func SetValue[T comparable](dst *T, v T) {
	if *dst != v {
		*dst = v
	}
}

// ReleaseMessage resets m (unless it is marked self-contained, see
// MarkSelfContained) and returns it to the pool; m and every view taken
// from it must not be used afterwards. A scratch buffer larger than 64 KiB
// is dropped rather than pooled.
func ReleaseMessage(m *Message) {
	if m == nil {
		return
	}
	release(free.local(), m)
}

// ReleaseMessages is ReleaseMessage for each of ms, finding the current
// processor's ring once.
func ReleaseMessages(ms []*Message) {
	r := free.local()
	for _, m := range ms {
		if m != nil {
			release(r, m)
		}
	}
}

// release readies m for the pool (reset unless self-contained, and never
// with a scratch buffer over maxPooledScratch) and queues it in r, or in
// messagePool when r refuses it.
func release(r *freeRing, m *Message) {
	if cap(m.scratch) > maxPooledScratch {
		m.Reset() // views into the dropped scratch must not keep it alive
		m.scratch = nil
	} else if !m.selfContained {
		m.Reset()
	}
	if !r.put(m) {
		messagePool.Put(m)
	}
}

// NewID sets m.ID to a fresh random UUID4 in canonical text form, stored
// in m itself (no allocation). The randomness comes from math/rand/v2's
// runtime source, which is seeded from the operating system; task ids need
// uniqueness, not secrecy.
func (m *Message) NewID() {
	putUUID4(&m.idBuf)
	SetView(&m.ID, m.idBuf[:]) // see AcquireMessageToOverwrite
}

// AppendUUID appends a fresh random UUID4 in canonical text form, from
// the same source as NewID.
func AppendUUID(dst []byte) []byte {
	var id [36]byte
	putUUID4(&id)
	return append(dst, id[:]...)
}

// NewUUID returns a fresh random UUID4 (see AppendUUID).
func NewUUID() string {
	var id [36]byte
	putUUID4(&id)
	return string(id[:])
}

// NewDeliveryTag sets m.DeliveryTag to a fresh UUID4, as kombu does for
// every publish on Redis (the tag is the key of the unacked entry).
func (m *Message) NewDeliveryTag() {
	putUUID4(&m.tagBuf)
	m.DeliveryTag = m.tagBuf[:]
}

// putUUID4 writes a random version 4 UUID. It is on every producer's hot
// path: the bytes come straight from two random words and are turned into
// hex eight at a time (hex8), with no table or per-byte branch.
func putUUID4(dst *[36]byte) {
	a, b := rand.Uint64(), rand.Uint64()
	// Byte i of the UUID is byte i of a (i < 8) or of b (i >= 8), low first.
	a = a&^(0xf0<<48) | 0x40<<48 // byte 6: version 4
	b = b&^0xc0 | 0x80           // byte 8: RFC 4122 variant
	a0, a1 := hex8(uint32(a)), hex8(uint32(a>>32))
	b0, b1 := hex8(uint32(b)), hex8(uint32(b>>32))
	le := binary.LittleEndian
	le.PutUint64(dst[0:8], a0)
	dst[8] = '-'
	le.PutUint32(dst[9:13], uint32(a1))
	dst[13] = '-'
	le.PutUint32(dst[14:18], uint32(a1>>32))
	dst[18] = '-'
	le.PutUint32(dst[19:23], uint32(b0))
	dst[23] = '-'
	le.PutUint32(dst[24:28], uint32(b0>>32))
	le.PutUint64(dst[28:36], b1)
}

// hex8 returns the lowercase hex text of v's four bytes, low byte first
// and high digit first within a byte, as the bytes of a little-endian word.
func hex8(v uint32) uint64 {
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff // byte k of v in bits 16k to 16k+7
	x = (x>>4)&0x000f000f000f000f | (x&0x000f000f000f000f)<<8
	// Each byte is now a digit value d; d >= 10 gets 'a'-'0'-10 more.
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

// Own copies s into m's scratch storage and returns the copy, so a
// producer can set fields without aliasing memory the caller will reuse.
// The copy lives until m is Reset or released.
func (m *Message) Own(s []byte) []byte {
	if s == nil {
		return nil
	}
	start := len(m.scratch)
	m.scratch = append(m.scratch, s...)
	return m.scratch[start:len(m.scratch):len(m.scratch)]
}

// OwnString is Own for a string.
func (m *Message) OwnString(s string) []byte {
	start := len(m.scratch)
	m.scratch = append(m.scratch, s...)
	return m.scratch[start:len(m.scratch):len(m.scratch)]
}

// ownUnescaped returns raw, the contents of a JSON string, as a view: raw
// itself when it has no escapes, else its decoded form copied into scratch.
func (m *Message) ownUnescaped(raw []byte, esc bool) []byte {
	return unescapeInto(&m.scratch, raw, esc)
}

// unescapeInto is ownUnescaped for any scratch buffer.
func unescapeInto(scratch *[]byte, raw []byte, esc bool) []byte {
	if !esc {
		return raw
	}
	start := len(*scratch)
	*scratch = appendUnescaped(*scratch, raw)
	return (*scratch)[start:len(*scratch):len(*scratch)]
}

// reserve makes room for n more scratch bytes in one step.
func (m *Message) reserve(n int) {
	if cap(m.scratch)-len(m.scratch) < n {
		grown := make([]byte, len(m.scratch), len(m.scratch)+n)
		copy(grown, m.scratch)
		m.scratch = grown
	}
}
