package compress

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzLimit keeps each fuzz input's output, and so its memory, small.
const fuzzLimit = 1 << 20

// fuzzDecompress checks that Decompress of any input returns the output or
// a typed error, never panics, never exceeds the limit, and that what it
// returns survives a round trip.
func fuzzDecompress(f *testing.F, c Codec, ext string) {
	f.Add(readTestdata(f, "sample."+ext))
	f.Add(readTestdata(f, "bomb."+ext))
	for _, s := range []string{"", "x", "hello hello hello hello"} {
		enc, err := c.Append(nil, []byte(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := c.Decompress([]byte("dst"), in, fuzzLimit)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error: %v", err)
			}
			if string(out) != "dst" {
				t.Fatalf("dst changed on error: %q", out[:min(len(out), 10)])
			}
			return
		}
		out = out[3:]
		if len(out) > fuzzLimit {
			t.Fatalf("%d bytes out, limit %d", len(out), fuzzLimit)
		}
		enc, err := c.Append(nil, out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decompress(nil, enc, fuzzLimit)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("re-encoded output does not round-trip: %v", err)
		}
	})
}

func FuzzDecompressZlib(f *testing.F)   { fuzzDecompress(f, Zlib, "zlib") }
func FuzzDecompressBzip2(f *testing.F)  { fuzzDecompress(f, Bzip2, "bz2") }
func FuzzDecompressLZMA(f *testing.F)   { fuzzDecompress(f, LZMA, "xz") }
func FuzzDecompressBrotli(f *testing.F) { fuzzDecompress(f, Brotli, "br") }
func FuzzDecompressZstd(f *testing.F)   { fuzzDecompress(f, Zstd, "zst") }
