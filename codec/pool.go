package codec

import (
	"math/rand/v2"
	"sync"
)

// maxPooledScratch is the largest scratch buffer a released Message keeps;
// bigger ones are dropped so one huge message does not pin memory forever.
const maxPooledScratch = 64 << 10

var messagePool = sync.Pool{New: func() any { return new(Message) }}

// AcquireMessage returns a Reset Message from a pool. Pair it with
// ReleaseMessage. AcquireMessage and ReleaseMessage are safe for concurrent
// use; the Message itself is not.
func AcquireMessage() *Message {
	m := messagePool.Get().(*Message)
	m.Reset()
	return m
}

// ReleaseMessage resets m and returns it to the pool; m and every view
// taken from it must not be used afterwards. A scratch buffer larger than
// 64 KiB is dropped rather than pooled.
func ReleaseMessage(m *Message) {
	if m == nil {
		return
	}
	m.Reset()
	if cap(m.scratch) > maxPooledScratch {
		m.scratch = nil
	}
	messagePool.Put(m)
}

// NewID sets m.ID to a fresh random UUID4 in canonical text form, stored
// in m itself (no allocation). The randomness comes from math/rand/v2's
// runtime source, which is seeded from the operating system; task ids need
// uniqueness, not secrecy.
func (m *Message) NewID() {
	putUUID4(&m.idBuf)
	m.ID = m.idBuf[:]
}

// NewDeliveryTag sets m.DeliveryTag to a fresh UUID4, as kombu does for
// every publish on Redis (the tag is the key of the unacked entry).
func (m *Message) NewDeliveryTag() {
	putUUID4(&m.tagBuf)
	m.DeliveryTag = m.tagBuf[:]
}

func putUUID4(dst *[36]byte) {
	var u [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hexDigits[c>>4]
		dst[j+1] = hexDigits[c&0xf]
		j += 2
	}
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
