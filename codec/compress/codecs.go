package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// pool is a typed sync.Pool of *T.
type pool[T any] struct {
	p   sync.Pool
	new func() *T
}

func (p *pool[T]) get() *T {
	if v, ok := p.p.Get().(*T); ok {
		return v
	}
	return p.new()
}

func (p *pool[T]) put(v *T) { p.p.Put(v) }

// ---- zlib ("gzip", application/x-gzip) ----

// zlibLevel is the level of Python's zlib.compress (Z_DEFAULT_COMPRESSION);
// the stream starts 78 9c as kombu's does.
const zlibLevel = zlib.DefaultCompression

type zlibEncoder struct {
	w   *zlib.Writer
	out appendWriter
}

var zlibEncoders = pool[zlibEncoder]{new: func() *zlibEncoder {
	e := &zlibEncoder{}
	e.w, _ = zlib.NewWriterLevel(&e.out, zlibLevel) // the level is valid: no error
	return e
}}

func appendZlib(dst, src []byte) ([]byte, error) {
	e := zlibEncoders.get()
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if err == nil {
		err = e.w.Close()
	}
	dst, e.out.b = e.out.b, nil
	zlibEncoders.put(e)
	return dst, err
}

type zlibDecoder struct {
	r  io.ReadCloser // nil until the first valid stream header
	in bytes.Reader
}

var zlibDecoders = pool[zlibDecoder]{new: func() *zlibDecoder { return &zlibDecoder{} }}

// errGzipFraming explains a gzip file sent as application/x-gzip.
var errGzipFraming = fmt.Errorf("%w: the body has gzip (RFC 1952) framing, but application/x-gzip means a zlib stream (RFC 1950) in kombu", ErrCorrupt)

func decompressZlib(dst, src []byte, limit int64) ([]byte, error) {
	if len(src) >= 2 && src[0] == 0x1f && src[1] == 0x8b {
		return dst, errGzipFraming
	}
	d := zlibDecoders.get()
	defer zlibDecoders.put(d)
	defer d.in.Reset(nil)
	d.in.Reset(src)
	var err error
	if d.r == nil {
		d.r, err = zlib.NewReader(&d.in)
	} else {
		err = d.r.(zlib.Resetter).Reset(&d.in, nil)
	}
	if err != nil {
		return dst, err
	}
	dst, err = readBounded(dst, d.r, limit, outputHint(len(src)))
	if err == nil && d.in.Len() > 0 {
		err = errTrailing
	}
	return dst, err
}

// ---- bzip2 ----

type bzip2Encoder struct {
	w   *bzip2.Writer
	out appendWriter
}

var bzip2Encoders = pool[bzip2Encoder]{new: func() *bzip2Encoder {
	e := &bzip2Encoder{}
	e.w, _ = bzip2.NewWriter(&e.out, nil) // the default level is valid: no error
	return e
}}

func appendBzip2(dst, src []byte) ([]byte, error) {
	e := bzip2Encoders.get()
	e.out.b = dst
	err := e.w.Reset(&e.out)
	if err == nil {
		_, err = e.w.Write(src)
	}
	if err == nil {
		err = e.w.Close()
	}
	dst, e.out.b = e.out.b, nil
	bzip2Encoders.put(e)
	return dst, err
}

type bzip2Decoder struct {
	r  *bzip2.Reader
	in bytes.Reader
}

var bzip2Decoders = pool[bzip2Decoder]{new: func() *bzip2Decoder {
	d := &bzip2Decoder{}
	d.r, _ = bzip2.NewReader(&d.in, nil) // never fails
	return d
}}

func decompressBzip2(dst, src []byte, limit int64) ([]byte, error) {
	d := bzip2Decoders.get()
	d.in.Reset(src)
	if err := d.r.Reset(&d.in); err != nil {
		return dst, err
	}
	dst, err := readBounded(dst, d.r, limit, outputHint(len(src)))
	d.in.Reset(nil)
	// dsnet's bzip2 Reader.Reset keeps its run-length decoder, and with it
	// the output of a block that was not read to the end: a decoder
	// abandoned mid-stream (an error, a bomb stopped at the limit) would
	// hand that output to its next user. Only a decoder that reached the
	// end of its stream goes back to the pool.
	if err == nil {
		bzip2Decoders.put(d)
	}
	return dst, err
}

// ---- lzma / xz (encoding; decoding is in xz.go) ----

// xzMaxEncoderDict is the dictionary of Python's default preset (6): 8 MiB.
// Smaller bodies get a dictionary of their own size, which keeps the
// encoder's allocation proportional to the body.
const xzMaxEncoderDict = 8 << 20

func appendLZMA(dst, src []byte) ([]byte, error) {
	out := appendWriter{b: dst}
	cfg := xz.WriterConfig{
		DictCap:  min(max(len(src), lzma.MinDictCap), xzMaxEncoderDict),
		CheckSum: xz.CRC64, // as Python's lzma.compress
	}
	w, err := cfg.NewWriter(&out)
	if err != nil {
		return dst, err
	}
	if _, err = w.Write(src); err == nil {
		err = w.Close()
	}
	return out.b, err
}

// ---- brotli ----

type brotliEncoder struct {
	w   *brotli.Writer
	out appendWriter
}

var brotliEncoders = pool[brotliEncoder]{new: func() *brotliEncoder {
	e := &brotliEncoder{}
	e.w = brotli.NewWriterLevel(&e.out, brotli.DefaultCompression)
	return e
}}

func appendBrotli(dst, src []byte) ([]byte, error) {
	e := brotliEncoders.get()
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if err == nil {
		err = e.w.Close()
	}
	dst, e.out.b = e.out.b, nil
	brotliEncoders.put(e)
	return dst, err
}

type brotliDecoder struct {
	r  *brotli.Reader
	in bytes.Reader
}

var brotliDecoders = pool[brotliDecoder]{new: func() *brotliDecoder {
	d := &brotliDecoder{}
	d.r = brotli.NewReader(&d.in)
	return d
}}

func decompressBrotli(dst, src []byte, limit int64) ([]byte, error) {
	d := brotliDecoders.get()
	defer brotliDecoders.put(d)
	defer d.in.Reset(nil)
	d.in.Reset(src)
	if err := d.r.Reset(&d.in); err != nil {
		return dst, err
	}
	return readBounded(dst, d.r, limit, outputHint(len(src)))
}

// ---- zstd ----

// zstdMaxWindow is the largest window a zstd frame may ask for: 8 MiB, what
// levels up to 19 use. kombu compresses with zstandard's default level (3).
const zstdMaxWindow = 8 << 20

// zstdEncoder is shared: EncodeAll is safe for concurrent use and runs up to
// GOMAXPROCS encodes at once. Zero frames are on so that an empty body still
// becomes a frame Python can decompress; EncodeAll writes the content size
// that zstandard's ZstdDecompressor.decompress insists on.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithZeroFrames(true),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
})

func appendZstd(dst, src []byte) ([]byte, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return dst, err
	}
	return enc.EncodeAll(src, dst), nil
}

type zstdDecoder struct {
	d  *zstd.Decoder
	in bytes.Reader
}

var zstdDecoders = pool[zstdDecoder]{new: func() *zstdDecoder {
	// With concurrency 1 the decoder runs in the caller's goroutine, and a
	// *bytes.Reader (no Bytes method) is streamed, not decoded whole.
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecoderMaxMemory(zstdMaxWindow))
	if err != nil {
		return &zstdDecoder{}
	}
	return &zstdDecoder{d: d}
}}

// errZstdDecoder reports that the zstd decoder could not be built.
var errZstdDecoder = errors.New("zstd decoder unavailable")

func decompressZstd(dst, src []byte, limit int64) ([]byte, error) {
	d := zstdDecoders.get()
	if d.d == nil {
		return dst, errZstdDecoder
	}
	defer zstdDecoders.put(d)
	defer d.d.Reset(nil)
	d.in.Reset(src)
	if err := d.d.Reset(&d.in); err != nil {
		return dst, err
	}
	dst, err := readBounded(dst, d.d, limit, outputHint(len(src)))
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return dst, err
}
