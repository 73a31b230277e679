package prefork

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrMalformedFrame is the error (wrapped, with details) for bytes on a
// pool pipe that break the protocol: a frame longer than the maximum, a
// stream cut inside a frame, a reply nobody asked for, or a child that does
// not greet. A parent that reads one kills that child and replaces it.
var ErrMalformedFrame = errors.New("prefork: malformed frame")

// DefaultMaxFrame is the default bound on one frame's payload (64 MiB).
const DefaultMaxFrame = 64 << 20

// headerLen is the size of a frame header: the payload length as a
// little-endian uint32.
const headerLen = 4

// hello is what a child writes first on its reply pipe, before any frame,
// so that a Command that starts the wrong program fails loudly.
var hello = [8]byte{'C', 'L', 'R', 'Y', 'P', 'F', '0', '1'}

// bufSize is the size of the buffered readers on both ends of a pipe. A
// frame that fits (header included) is handed out as a view into the
// buffer; a larger one is read into a scratch slice.
const bufSize = 64 << 10

// maxKeep is the largest scratch buffer kept after use; larger ones are
// dropped so that one big frame does not pin its memory.
const maxKeep = 1 << 20

// appendFrame appends a frame holding payload to dst and returns it.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// frameReader reads frames from a bufio.Reader. Payloads it returns are
// views, valid until the next call to next; the reader owns them.
//
// A frameReader is not safe for concurrent use.
type frameReader struct {
	br      *bufio.Reader
	max     int    // largest payload accepted
	big     []byte // scratch for frames that do not fit in br
	discard int    // bytes of the previous frame still in br
}

// next returns the next frame's payload. At a clean end of stream (between
// frames) it returns io.EOF; a stream cut inside a frame, or a frame longer
// than r.max, is an error wrapping ErrMalformedFrame; other read errors are
// returned as they are.
func (r *frameReader) next() ([]byte, error) {
	r.release()
	hdr, err := r.br.Peek(headerLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			return nil, fmt.Errorf("%w: stream ends inside a frame header", ErrMalformedFrame)
		}
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr))
	if n > r.max {
		return nil, fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", ErrMalformedFrame, n, r.max)
	}
	if total := headerLen + n; total <= r.br.Size() {
		b, err := r.br.Peek(total)
		if err != nil {
			return nil, cut(err, n)
		}
		r.discard = total
		return b[headerLen:], nil
	}
	if _, err := r.br.Discard(headerLen); err != nil {
		return nil, err
	}
	// Grow with the data actually received, not with what the header
	// claims, so that a lying header costs no more than the bytes behind it.
	buf := r.big[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(len(buf), bufSize)))
		}
		m, err := r.br.Read(buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			r.big = buf[:0]
			return nil, cut(err, n)
		}
	}
	r.big = buf
	return buf, nil
}

// cut turns an end of stream inside an n-byte frame into a malformed-frame
// error and returns other errors as they are.
func cut(err error, n int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ends inside a frame of %d bytes", ErrMalformedFrame, n)
	}
	return err
}

// release discards the previous frame and drops an oversized scratch buffer.
func (r *frameReader) release() {
	if r.discard > 0 {
		_, _ = r.br.Discard(r.discard) // the bytes are buffered: cannot fail
		r.discard = 0
	}
	if cap(r.big) > maxKeep {
		r.big = nil
	}
}

// complete returns how many complete frames, at most limit, are buffered
// after the current one: that many calls to next will not block. It stops
// at the first incomplete or oversized frame.
func (r *frameReader) complete(limit int) int {
	buf, _ := r.br.Peek(r.br.Buffered()) // never blocks, never fails
	buf = buf[r.discard:]
	k := 0
	for k < limit && len(buf) >= headerLen {
		n := int(binary.LittleEndian.Uint32(buf))
		if n > r.max || headerLen+n > len(buf) {
			break
		}
		buf = buf[headerLen+n:]
		k++
	}
	return k
}
