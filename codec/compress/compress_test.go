package compress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// all lists every codec with the extension of its golden vectors.
var all = []struct {
	codec Codec
	ext   string
}{
	{Zlib, "zlib"},
	{Bzip2, "bz2"},
	{LZMA, "xz"},
	{Brotli, "br"},
	{Zstd, "zst"},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Codec
		ok   bool
	}{
		{"zlib", Zlib, true},
		{"gzip", Zlib, true},
		{"GZip", Zlib, true},
		{"application/x-gzip", Zlib, true},
		{"bzip2", Bzip2, true},
		{"bzip", Bzip2, true},
		{"application/x-bz2", Bzip2, true},
		{"lzma", LZMA, true},
		{"xz", LZMA, true},
		{"application/x-lzma", LZMA, true},
		{"brotli", Brotli, true},
		{"application/x-brotli", Brotli, true},
		{"zstd", Zstd, true},
		{"zstandard", Zstd, true},
		{"APPLICATION/ZSTD", Zstd, true},
		{"", Codec{}, false},
		{"application/gzip", Codec{}, false},
		{"application/x-gzip ", Codec{}, false},
		{"snappy", Codec{}, false},
	}
	for _, tt := range tests {
		got, ok := Lookup(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestZeroCodec(t *testing.T) {
	t.Parallel()
	var c Codec
	if _, err := c.Append(nil, []byte("x")); !errors.Is(err, ErrUnknown) {
		t.Errorf("Append: %v, want ErrUnknown", err)
	}
	if _, err := c.Decompress(nil, []byte("x"), 0); !errors.Is(err, ErrUnknown) {
		t.Errorf("Decompress: %v, want ErrUnknown", err)
	}
}

// bodies returns the round-trip inputs: empty, tiny, text-like, random.
func bodies() map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := bytes.Repeat([]byte(`[[2, 3], {"x": "h\u00e9llo"}, {"callbacks": null}] `), 2000)
	return map[string][]byte{
		"empty":  {},
		"byte":   {0},
		"hello":  []byte("hello"),
		"text":   text,
		"random": random,
		"zeros":  make([]byte, 1<<20),
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range all {
		for name, body := range bodies() {
			t.Run(c.codec.Name+"/"+name, func(t *testing.T) {
				t.Parallel()
				prefix := []byte("prefix")
				enc, err := c.codec.Append(append([]byte(nil), prefix...), body)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(enc, prefix) {
					t.Fatalf("Append lost dst's prefix")
				}
				dec, err := c.codec.Decompress(append([]byte(nil), prefix...), enc[len(prefix):], 0)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(dec[:len(prefix)], prefix) || !bytes.Equal(dec[len(prefix):], body) {
					t.Fatalf("round trip of %d bytes gave %d bytes", len(body), len(dec)-len(prefix))
				}
				// Exactly at the limit is allowed; one byte less is not.
				if len(body) > 1 {
					if _, err := c.codec.Decompress(nil, enc[len(prefix):], int64(len(body))); err != nil {
						t.Errorf("limit = size: %v", err)
					}
					if _, err := c.codec.Decompress(nil, enc[len(prefix):], int64(len(body)-1)); !errors.Is(err, ErrTooLarge) {
						t.Errorf("limit = size-1: %v, want ErrTooLarge", err)
					}
				}
			})
		}
	}
}

// TestZlibIsNotGzip guards kombu's naming: "gzip" writes a zlib stream.
func TestZlibIsNotGzip(t *testing.T) {
	t.Parallel()
	c, _ := Lookup("gzip")
	out, err := c.Append(nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 0x78 || out[1] != 0x9c {
		t.Fatalf("zlib stream starts % x, want 78 9c as Python's zlib.compress", out[:2])
	}

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("hello"))
	w.Close()
	_, err = c.Decompress(nil, gz.Bytes(), 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "RFC 1952") {
		t.Fatalf("gzip file as application/x-gzip: %v, want ErrCorrupt naming the gzip framing", err)
	}
}

// TestGoldenPython decodes what kombu.compression.compress wrote
// (testdata/gen.py).
func TestGoldenPython(t *testing.T) {
	t.Parallel()
	want := readTestdata(t, "sample.json")
	for _, c := range all {
		got, err := c.codec.Decompress(nil, readTestdata(t, "sample."+c.ext), 0)
		if err != nil {
			t.Errorf("%s: %v", c.codec.Name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", c.codec.Name, got, want)
		}
	}
}

// TestBombsFromPython feeds kombu-made bodies of DefaultLimit+1 zero bytes
// with a 1 MiB limit: each must fail with ErrTooLarge naming the codec and
// leave dst as it was. TestAllocsBombs checks the default limit and the
// memory spent.
func TestBombsFromPython(t *testing.T) {
	t.Parallel()
	for _, c := range all {
		bomb := readTestdata(t, "bomb."+c.ext)
		dst := []byte("keep")
		out, err := c.codec.Decompress(dst, bomb, 1<<20)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", c.codec.Name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.codec.Name) {
			t.Errorf("error %q does not name the codec", err)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst on error = %q, want it unchanged", c.codec.Name, out)
		}
	}
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("celery task body "), 100)
	for _, c := range all {
		enc, err := c.codec.Append(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte(nil), enc...)
		flipped[len(flipped)/2] ^= 0x55
		cases := map[string][]byte{
			"empty":     nil,
			"garbage":   []byte("this is not compressed at all, not even a little"),
			"truncated": enc[:len(enc)-3],
			"half":      enc[:len(enc)/2],
			"flipped":   flipped,
			"trailing":  append(append([]byte(nil), enc...), "junk"...),
		}
		for name, in := range cases {
			if c.codec == Brotli && name == "trailing" {
				continue // the brotli reader buffers its input; see TestBrotliTrailing
			}
			_, err := c.codec.Decompress(nil, in, 0)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s/%s: %v, want ErrCorrupt", c.codec.Name, name, err)
				continue
			}
			if !strings.Contains(err.Error(), c.codec.Name) {
				t.Errorf("%s/%s: error %q does not name the codec", c.codec.Name, name, err)
			}
		}
	}
}

// TestBrotliTrailing documents that bytes after a brotli stream are an
// error too (the decoder notices them itself).
func TestBrotliTrailing(t *testing.T) {
	t.Parallel()
	enc, _ := Brotli.Append(nil, []byte("hello"))
	_, err := Brotli.Decompress(nil, append(enc, "junk"...), 0)
	if err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

// TestDecoderAbandonedMidStreamIsNotReused guards the decoder pools: a
// decoder left mid-stream (a bomb stopped at the limit) kept buffered output
// through Reset, and the next body decoded by it came out with that output
// in front (seen as a run of zero bytes before a bzip2 body).
func TestDecoderAbandonedMidStreamIsNotReused(t *testing.T) {
	want := readTestdata(t, "sample.json")
	for _, c := range all {
		bomb := readTestdata(t, "bomb."+c.ext)
		sample := readTestdata(t, "sample."+c.ext)
		for range 20 {
			if _, err := c.codec.Decompress(nil, bomb, 1<<20); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s bomb: %v", c.codec.Name, err)
			}
			got, err := c.codec.Decompress(nil, sample, 0)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s after an abandoned decode: %d bytes, err %v; want the %d-byte sample", c.codec.Name, len(got), err, len(want))
			}
		}
	}
}
