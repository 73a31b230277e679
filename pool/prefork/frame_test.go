package prefork

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// frames concatenates a frame per payload.
func frames(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = appendFrame(b, []byte(p))
	}
	return b
}

// header returns a bare frame header announcing n bytes.
func header(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }

func TestFrameReader(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", bufSize+1) // larger than the read buffer
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int
		want    []string
		wantErr string // "" = clean EOF after want
	}{
		{"empty stream", nil, 16, nil, ""},
		{"one frame", frames("abc"), 16, []string{"abc"}, ""},
		{"empty payloads", frames("", "", "x"), 16, []string{"", "", "x"}, ""},
		{"at the limit", frames("0123456789abcdef"), 16, []string{"0123456789abcdef"}, ""},
		{"over the limit", frames("0123456789abcdefg"), 16, nil, "exceeds the limit"},
		{"lying header", header(1 << 31), DefaultMaxFrame, nil, "exceeds the limit"},
		{"cut header", []byte{3, 0}, 16, nil, "inside a frame header"},
		{"cut payload", append(header(5), "ab"...), 16, nil, "inside a frame of 5 bytes"},
		{"cut after a frame", append(frames("ok"), 9), 16, []string{"ok"}, "inside a frame header"},
		{"big frame", frames(big, "after"), 2 * bufSize, []string{big, "after"}, ""},
		{"big frame cut", append(header(bufSize+10), big[:100]...), 2 * bufSize, nil, "inside a frame of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, chunked := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(tc.in)
				if chunked {
					src = iotest.OneByteReader(src)
				}
				r := &frameReader{br: bufio.NewReaderSize(src, bufSize), max: tc.max}
				var got []string
				var err error
				for {
					var p []byte
					if p, err = r.next(); err != nil {
						break
					}
					got = append(got, string(p))
				}
				if len(got) != len(tc.want) {
					t.Fatalf("chunked=%v: got %d frames, want %d", chunked, len(got), len(tc.want))
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Fatalf("chunked=%v: frame %d differs", chunked, i)
					}
				}
				switch {
				case tc.wantErr == "" && err != io.EOF:
					t.Fatalf("chunked=%v: err = %v, want io.EOF", chunked, err)
				case tc.wantErr != "" && (!errors.Is(err, ErrMalformedFrame) || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("chunked=%v: err = %v, want ErrMalformedFrame with %q", chunked, err, tc.wantErr)
				}
			}
		})
	}
}

func TestFrameReaderComplete(t *testing.T) {
	t.Parallel()
	in := append(frames("a", "bb", "ccc"), header(4)...) // the last one is cut
	r := &frameReader{br: bufio.NewReaderSize(bytes.NewReader(in), bufSize), max: 16}
	if _, err := r.next(); err != nil {
		t.Fatal(err)
	}
	if n := r.complete(10); n != 2 {
		t.Fatalf("complete after the first frame = %d, want 2", n)
	}
	if n := r.complete(1); n != 1 {
		t.Fatalf("complete(1) = %d, want 1", n)
	}
	r.next()
	r.next()
	if n := r.complete(10); n != 0 {
		t.Fatalf("complete before a cut frame = %d, want 0", n)
	}
}

// FuzzFrameReader feeds arbitrary bytes to the parent's reply decoder: it
// must return frames within the limit and then an error, never panic, hang
// or allocate beyond the limit.
func FuzzFrameReader(f *testing.F) {
	f.Add(frames("a", "", "ccc"))
	f.Add(header(1 << 31))
	f.Add(append(header(300), make([]byte, 200)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 256
		r := &frameReader{br: bufio.NewReaderSize(bytes.NewReader(in), 64), max: max}
		total := 0
		for {
			k := r.complete(1 << 10)
			p, err := r.next()
			if err != nil {
				if k > 0 {
					t.Fatalf("complete said %d frames were buffered, next failed: %v", k, err)
				}
				if err != io.EOF && !errors.Is(err, ErrMalformedFrame) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(p) > max {
				t.Fatalf("frame of %d bytes over the %d limit", len(p), max)
			}
			total += headerLen + len(p)
			if total > len(in) {
				t.Fatalf("decoded %d bytes from %d", total, len(in))
			}
		}
	})
}

// FuzzServe feeds arbitrary bytes to a child's serving loop (in process,
// echoing): it must answer every complete frame, in order, and end with nil
// or an error, never panic or hang.
func FuzzServe(f *testing.F) {
	f.Add(frames("a", "", "ccc"))
	f.Add(append(frames("x"), 200, 1, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		echo := func(dst, p []byte) []byte { return append(dst, p...) }
		err := serve(bytes.NewReader(in), &out, nil, 256, echo)
		if !bytes.HasPrefix(out.Bytes(), hello[:]) {
			t.Fatal("no greeting")
		}
		// The replies are the request frames that were complete, verbatim.
		replies := out.Bytes()[len(hello):]
		if !bytes.HasPrefix(in, replies) {
			t.Fatalf("replies are not an echo of the requests")
		}
		if err == nil && len(replies) != len(in) {
			t.Fatalf("clean end, but %d of %d bytes answered", len(replies), len(in))
		}
	})
}

func TestServe(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	var out syncBuffer
	done := make(chan error, 1)
	upper := func(dst, p []byte) []byte { return append(dst, bytes.ToUpper(p)...) }
	go func() { done <- serve(pr, &out, nil, 64, upper) }()
	if _, err := pw.Write(frames("a", "bc")); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(frames("def")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	want := append(hello[:], frames("A", "BC", "DEF")...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("output %q, want %q", out.Bytes(), want)
	}

	// A reply over the limit ends the loop with ErrFrameTooLarge.
	grow := func(dst, p []byte) []byte { return append(dst, make([]byte, 65)...) }
	err := serve(bytes.NewReader(frames("x")), io.Discard, nil, 64, grow)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized reply: err = %v", err)
	}
	if err := serve(bytes.NewReader(nil), io.Discard, nil, 64, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}

// syncBuffer is a bytes.Buffer safe for the flusher goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func TestParseChildEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"1:3:4:5:67108864", true},
		{childEnv{in: 7, out: 8, progress: 9, maxFrame: 10}.String(), true},
		{"", false},
		{"1", false},
		{"2:3:4:5:6", false},
		{"1:0:4:5:6", false},
		{"1:3:4:5:-1", false},
		{"1:3:x:5:6", false},
		{"1:3:4:5:6:7", false},
	} {
		_, err := parseChildEnv(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseChildEnv(%q): err = %v", tc.in, err)
		}
		if err != nil && !errors.Is(err, ErrNotChild) {
			t.Errorf("parseChildEnv(%q): err = %v, want ErrNotChild", tc.in, err)
		}
	}
}

func TestParseStatm(t *testing.T) {
	t.Parallel()
	page := int64(pageSize) / 1024
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1000 250 30 1 0 100 0\n", 250 * page},
		{"1000 0 0", 0},
		{"garbage", 0},
		{"", 0},
		{"1 99999999999999999999", 0},
	} {
		if got := parseStatm([]byte(tc.in)); got != tc.want {
			t.Errorf("parseStatm(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
