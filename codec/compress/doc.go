// Package compress implements the body compressors kombu (and so Celery)
// knows, under kombu's names and mime types.
//
// A compressed Celery message keeps its serializer's content_type and gains
// the header "compression" set to the compressor's mime type; only the body
// is compressed. Look a [Codec] up by that header value, or by the alias a
// user configures (Celery's task_compression / result_compression), with
// [Lookup]:
//
//	alias(es)           mime type              bytes on the wire
//	zlib, gzip          application/x-gzip     zlib stream (RFC 1950), as zlib.compress
//	bzip2, bzip         application/x-bz2      bzip2 stream, as bz2.compress
//	lzma, xz            application/x-lzma     .xz container with one LZMA2 filter, as lzma.compress
//	brotli              application/x-brotli   brotli stream, as brotli.compress
//	zstd, zstandard     application/zstd       zstd frame with the content size, as zstandard
//
// "gzip" is a misnomer kept by kombu: application/x-gzip bodies are zlib
// streams (they start 78 9c), not gzip files (RFC 1952, starting 1f 8b).
// Python's zlib.decompress rejects a gzip file and so does [Codec.Decompress];
// its error then says that the body has gzip framing. celerity never writes
// gzip framing.
//
// Encoding appends to a caller-owned dst ([Codec.Append]); decoding appends
// the decompressed bytes to a caller-owned dst ([Codec.Decompress]) and stops
// with [ErrTooLarge] as soon as the output would exceed the caller's limit,
// so a decompression bomb costs at most about limit bytes of memory: the
// output is read in bounded steps, never with an unbounded io.ReadAll.
// Decoders and encoders are reused through pools where the library allows
// (zlib, bzip2, brotli, zstd). The xz decoder is this package's own reading
// of the container around the LZMA2 decoder of github.com/ulikunitz/xz, so
// that the dictionary it allocates is never larger than the limit, whatever
// the stream header claims.
//
// Codec values are small immutable descriptors, safe for concurrent use; the
// pools behind them are too.
//
// Libraries: zlib github.com/klauspost/compress/zlib, bzip2
// github.com/dsnet/compress/bzip2 (encoder and decoder; the standard library
// only decodes), lzma github.com/ulikunitz/xz, brotli
// github.com/andybalholm/brotli, zstd github.com/klauspost/compress/zstd.
package compress
