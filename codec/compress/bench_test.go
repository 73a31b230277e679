package compress

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"fmt"
	"io"
	"testing"
)

// benchBody returns n bytes of a JSON-like task body: compressible, but not
// trivially.
func benchBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `[[%d, "user-%d@example.com"], {"attempt": %d}, {"chain": null}] `, i, i*7919, i%5)
	}
	return b.Bytes()[:n]
}

var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

func BenchmarkAppend(b *testing.B) {
	for _, c := range all {
		for _, s := range benchSizes {
			body := benchBody(s.n)
			b.Run(c.codec.Name+"/"+s.name, func(b *testing.B) {
				dst, _ := c.codec.Append(nil, body)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = c.codec.Append(dst[:0], body)
				}
				b.ReportMetric(float64(len(dst))/float64(len(body)), "ratio")
			})
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, c := range all {
		for _, s := range benchSizes {
			body := benchBody(s.n)
			enc, _ := c.codec.Append(nil, body)
			b.Run(c.codec.Name+"/"+s.name, func(b *testing.B) {
				dst, err := c.codec.Decompress(nil, enc, 0)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = c.codec.Decompress(dst[:0], enc, 0)
				}
			})
		}
	}
}

// BenchmarkDecompressStdlib is the baseline the pooled decoders are
// measured against: the standard library's readers, built per message and
// drained with io.ReadAll, as a naive decoder would.
func BenchmarkDecompressStdlib(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody(s.n)
		z, _ := Zlib.Append(nil, body)
		bz, _ := Bzip2.Append(nil, body)
		b.Run("zlib/"+s.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r, _ := zlib.NewReader(bytes.NewReader(z))
				io.ReadAll(r)
			}
		})
		b.Run("bzip2/"+s.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				io.ReadAll(bzip2.NewReader(bytes.NewReader(bz)))
			}
		})
	}
}
