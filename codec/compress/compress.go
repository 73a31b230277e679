package compress

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// DefaultLimit is the decompressed-size limit used when Decompress is given
// a limit <= 0: 64 MiB.
const DefaultLimit = 64 << 20

var (
	// ErrTooLarge reports a body whose decompressed size would exceed the
	// limit given to Decompress (a decompression bomb, or a limit set too
	// low), or a stream that asks for more decoder memory than allowed.
	ErrTooLarge = errors.New("decompressed body exceeds the size limit")
	// ErrUnknown reports a compression name or mime type that kombu does not
	// define or celerity does not implement, or the zero Codec.
	ErrUnknown = errors.New("unknown compression")
	// ErrCorrupt reports bytes that are not a valid stream of the codec:
	// truncated, a checksum mismatch, the wrong format, trailing bytes.
	ErrCorrupt = errors.New("corrupt compressed body")
)

type kind uint8

const (
	kindNone kind = iota
	kindZlib
	kindBzip2
	kindLZMA
	kindBrotli
	kindZstd
)

// Codec is one of kombu's compressors. Name is celerity's canonical alias
// for it and Mime the value of the message header "compression". The zero
// Codec is invalid: its methods return ErrUnknown. Codec is a small value,
// safe for concurrent use.
type Codec struct {
	// Name is the canonical alias: "zlib", "bzip2", "lzma", "brotli", "zstd".
	Name string
	// Mime is the mime type kombu writes in the "compression" header.
	Mime string
	kind kind
}

// The codecs kombu 5.2 registers, under celerity's canonical names.
var (
	// Zlib is kombu's "zlib"/"gzip": a zlib stream labelled application/x-gzip.
	Zlib = Codec{Name: "zlib", Mime: "application/x-gzip", kind: kindZlib}
	// Bzip2 is kombu's "bzip2"/"bzip".
	Bzip2 = Codec{Name: "bzip2", Mime: "application/x-bz2", kind: kindBzip2}
	// LZMA is kombu's "lzma"/"xz": an .xz container (Python lzma.compress).
	LZMA = Codec{Name: "lzma", Mime: "application/x-lzma", kind: kindLZMA}
	// Brotli is kombu's "brotli" (registered when Python's brotli is installed).
	Brotli = Codec{Name: "brotli", Mime: "application/x-brotli", kind: kindBrotli}
	// Zstd is kombu's "zstd"/"zstandard" (registered when Python's zstandard
	// is installed).
	Zstd = Codec{Name: "zstd", Mime: "application/zstd", kind: kindZstd}
)

// lookupTable maps every alias and mime type kombu accepts to its codec.
var lookupTable = [...]struct {
	key   string
	codec *Codec
}{
	{"application/x-gzip", &Zlib},
	{"zlib", &Zlib},
	{"gzip", &Zlib},
	{"application/x-bz2", &Bzip2},
	{"bzip2", &Bzip2},
	{"bzip", &Bzip2},
	{"application/x-lzma", &LZMA},
	{"lzma", &LZMA},
	{"xz", &LZMA},
	{"application/x-brotli", &Brotli},
	{"brotli", &Brotli},
	{"application/zstd", &Zstd},
	{"zstd", &Zstd},
	{"zstandard", &Zstd},
}

// Lookup returns the codec for a kombu alias ("zlib", "gzip", "bzip2",
// "bzip", "lzma", "xz", "brotli", "zstd", "zstandard") or mime type (the
// "compression" header value), compared case-insensitively. It does not
// allocate. A caller holding the header as []byte can pass a zero-copy
// string view of it.
func Lookup(nameOrMime string) (Codec, bool) {
	for i := range lookupTable {
		if strings.EqualFold(lookupTable[i].key, nameOrMime) {
			return *lookupTable[i].codec, true
		}
	}
	return Codec{}, false
}

// Append compresses src and appends the result to dst, which the caller
// owns, and returns the extended slice. src is only read. On error dst is
// returned with its original length.
func (c Codec) Append(dst, src []byte) ([]byte, error) {
	var err error
	n := len(dst)
	switch c.kind {
	case kindZlib:
		dst, err = appendZlib(dst, src)
	case kindBzip2:
		dst, err = appendBzip2(dst, src)
	case kindLZMA:
		dst, err = appendLZMA(dst, src)
	case kindBrotli:
		dst, err = appendBrotli(dst, src)
	case kindZstd:
		dst, err = appendZstd(dst, src)
	default:
		return dst, fmt.Errorf("compress: %w: the zero Codec", ErrUnknown)
	}
	if err != nil {
		return dst[:n], fmt.Errorf("compress: %s: encoding: %w", c.Name, err)
	}
	return dst, nil
}

// Decompress decompresses src and appends the result to dst, which the
// caller owns, and returns the extended slice. src is only read and not
// retained. At most limit bytes are appended: a body that decompresses to
// more fails with ErrTooLarge after about limit bytes of work and memory; a
// limit <= 0 means DefaultLimit. Invalid input fails with ErrCorrupt. Both
// errors name the codec. On error dst is returned with its original length
// (the bytes after it may have been overwritten).
func (c Codec) Decompress(dst, src []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if len(src) == 0 && c.kind != kindNone {
		return dst, fmt.Errorf("compress: %s: %w: empty body", c.Name, ErrCorrupt)
	}
	var err error
	n := len(dst)
	switch c.kind {
	case kindZlib:
		dst, err = decompressZlib(dst, src, limit)
	case kindBzip2:
		dst, err = decompressBzip2(dst, src, limit)
	case kindLZMA:
		dst, err = decompressXZ(dst, src, limit)
	case kindBrotli:
		dst, err = decompressBrotli(dst, src, limit)
	case kindZstd:
		dst, err = decompressZstd(dst, src, limit)
	default:
		return dst, fmt.Errorf("compress: %w: the zero Codec", ErrUnknown)
	}
	if err == nil {
		return dst, nil
	}
	dst = dst[:n]
	switch {
	case errors.Is(err, ErrTooLarge):
		return dst, fmt.Errorf("compress: %s: output over the %d-byte limit: %w", c.Name, limit, err)
	case errors.Is(err, ErrCorrupt):
		return dst, fmt.Errorf("compress: %s: %w", c.Name, err)
	}
	return dst, fmt.Errorf("compress: %s: %w: %w", c.Name, ErrCorrupt, err)
}

// appendWriter is an io.Writer that appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// errTrailing reports bytes after the end of the compressed stream.
var errTrailing = fmt.Errorf("%w: trailing bytes after the end of the stream", ErrCorrupt)

// maxStalls bounds how many reads in a row may return no byte and no error.
const maxStalls = 100

// readBounded appends what r yields to dst until io.EOF. It fails with
// ErrTooLarge as soon as more than limit bytes arrived: it never asks r for
// more than limit+1 bytes, and grows dst at most to that size, so the memory
// spent on a bomb is bounded by the limit. hint is a guess of the output
// size used for the first allocation. Other errors of r are returned as they
// are.
func readBounded(dst []byte, r io.Reader, limit int64, hint int) ([]byte, error) {
	start := len(dst)
	// maxLen is the length at which the output has exceeded the limit.
	maxLen := math.MaxInt
	if limit < int64(math.MaxInt-start) {
		maxLen = start + int(limit) + 1
	}
	stalls := 0
	for {
		if len(dst) == cap(dst) {
			dst = grow(dst, maxLen, hint)
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), maxLen)])
		dst = dst[:len(dst)+n]
		if len(dst) >= maxLen {
			return dst, ErrTooLarge
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst, err
		case n == 0:
			stalls++
			if stalls > maxStalls {
				return dst, io.ErrNoProgress
			}
		default:
			stalls = 0
		}
	}
}

// grow returns dst with more capacity: doubled, at least hint more bytes
// (and at least 512), never beyond maxLen.
func grow(dst []byte, maxLen, hint int) []byte {
	c := cap(dst)
	add := max(c, hint, 512)
	newCap := maxLen
	if add < maxLen-c {
		newCap = c + add
	}
	nd := make([]byte, len(dst), newCap)
	copy(nd, dst)
	return nd
}

// outputHint guesses the decompressed size of n compressed bytes, for the
// first allocation of the output.
func outputHint(n int) int {
	return min(n, 1<<20) * 4
}
