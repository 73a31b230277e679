//go:build !race

package compress

import (
	"errors"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestAllocsLookup(t *testing.T) {
	for _, name := range []string{"zlib", "application/x-gzip", "ZSTANDARD", "nope"} {
		if n := testing.AllocsPerRun(100, func() { Lookup(name) }); n != 0 {
			t.Errorf("Lookup(%q): %v allocs, want 0", name, n)
		}
	}
}

// TestAllocsPooled: with warm pools, zlib and zstd encode and decode a 1 KiB
// body into a reused buffer without allocating. The others allocate inside
// their libraries, which we cannot change: dsnet/bzip2's encoder (suffix
// array and prefix-code sorting, 14 small allocations) and decoder (a
// closure, 1), andybalholm/brotli's decoder (context maps, 3). Their budgets
// are pinned here so that losing the pooling shows. lzma is not listed: the
// ulikunitz/xz encoder and LZMA2 decoder have no Reset, so every call builds
// them and their dictionary afresh.
func TestAllocsPooled(t *testing.T) {
	body := benchBody(1 << 10)
	tests := []struct {
		codec         Codec
		append, decom float64
	}{
		{Zlib, 0, 0},
		{Zstd, 0, 0},
		{Bzip2, 14, 1},
		{Brotli, 0, 3},
	}
	for _, tt := range tests {
		c := tt.codec
		enc, _ := c.Append(nil, body)
		dst := make([]byte, 0, 4<<10)
		if n := testing.AllocsPerRun(100, func() { dst, _ = c.Append(dst[:0], body) }); n > tt.append {
			t.Errorf("%s Append: %v allocs, want <= %v", c.Name, n, tt.append)
		}
		if n := testing.AllocsPerRun(100, func() { dst, _ = c.Decompress(dst[:0], enc, 0) }); n > tt.decom {
			t.Errorf("%s Decompress: %v allocs, want <= %v", c.Name, n, tt.decom)
		}
	}
}

// TestAllocsBombs: kombu-made bodies of DefaultLimit+1 zero bytes fail with
// ErrTooLarge under the default limit, and under a 1 MiB limit they cost
// memory in proportion to the limit, not to the 64 MiB they inflate to.
// (Not under -race: the race detector makes sync.Pool drop objects.) A
// decoder made afresh costs its window or block buffers on top, a fixed
// amount whatever the body (measured cold: brotli 7.4 MB, bzip2 12.9 MB,
// zstd 4.7 MB, zlib 2.9 MB), which is why the pools are warmed first and
// the collector, which empties sync.Pools, is held off until the
// measurement is done: run beside other test packages, a collection in
// between once made brotli's cost the cold one.
func TestAllocsBombs(t *testing.T) {
	for _, c := range all {
		bomb := readTestdata(t, "bomb."+c.ext)
		if _, err := c.codec.Decompress(nil, bomb, 0); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s, default limit: %v, want ErrTooLarge", c.codec.Name, err)
		}
		spent, err := func() (uint64, error) {
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			// Warm the pools with a complete decode of the bomb (a limit
			// above its size), so that the pooled decoders hold the buffers
			// such bodies need: a decoder abandoned mid-stream is not pooled
			// (bzip2, see decompressBzip2).
			if _, err := c.codec.Decompress(nil, bomb, DefaultLimit+1); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.codec.Decompress(nil, bomb, 1<<20)
			runtime.ReadMemStats(&after)
			return after.TotalAlloc - before.TotalAlloc, err
		}()
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s, 1 MiB limit: %v, want ErrTooLarge", c.codec.Name, err)
		}
		// Growing the output to 1 MiB by doubling costs about 2 MiB; some
		// decoders keep scratch space too. 64 MiB would mean no bound.
		if spent > 4<<20 {
			t.Errorf("%s: a 1 MiB limit allocated %d bytes", c.codec.Name, spent)
		}
	}
}
