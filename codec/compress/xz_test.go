package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzWith encodes body with ulikunitz's writer and the given check.
func xzWith(t *testing.T, body []byte, check byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: check, NoCheckSum: check == xz.None, DictCap: 1 << 16}.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestXZChecks(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("abc"), 5000)
	for _, check := range []byte{xz.None, xz.CRC32, xz.CRC64, xz.SHA256} {
		enc := xzWith(t, body, check)
		got, err := LZMA.Decompress(nil, enc, 0)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("check %#x: %v (%d bytes)", check, err, len(got))
		}
		if check == xz.None {
			continue
		}
		// The check field sits just before the index, whose size the
		// footer gives; corrupt the check's last byte.
		bad := append([]byte(nil), enc...)
		footer := bad[len(bad)-12:]
		indexSize := (int(binary.LittleEndian.Uint32(footer[4:])) + 1) * 4
		bad[len(bad)-12-indexSize-1] ^= 1
		if _, err := LZMA.Decompress(nil, bad, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "check mismatch") {
			t.Errorf("check %#x: corrupted check gave %v", check, err)
		}
	}
}

// TestXZConcatenated: Python's lzma.decompress reads concatenated streams
// with stream padding between them, and so do we.
func TestXZConcatenated(t *testing.T) {
	t.Parallel()
	a, _ := LZMA.Append(nil, []byte("first "))
	b, _ := LZMA.Append(nil, []byte("second"))
	in := append(append(append([]byte(nil), a...), 0, 0, 0, 0), b...)
	got, err := LZMA.Decompress(nil, in, 0)
	if err != nil || string(got) != "first second" {
		t.Fatalf("got %q, %v", got, err)
	}
	in = append(append(append([]byte(nil), a...), 0, 0), b...)
	if _, err := LZMA.Decompress(nil, in, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("padding of 2 bytes: %v, want ErrCorrupt", err)
	}
}

// TestXZForgedDictionary guards the reason xz.go exists: a block header
// asking for a 4 GiB dictionary must not make us allocate it.
func TestXZForgedDictionary(t *testing.T) {
	enc, err := LZMA.Append(nil, []byte("hello hello hello"))
	if err != nil {
		t.Fatal(err)
	}
	// Block header at offset 12: size, flags, [sizes], 0x21, 0x01, props.
	hdrSize := (int(enc[12]) + 1) * 4
	hdr := enc[12 : 12+hdrSize]
	p := bytes.Index(hdr, []byte{0x21, 0x01})
	if p < 0 {
		t.Fatalf("no LZMA2 filter in block header % x", hdr)
	}
	hdr[p+2] = 40 // 4 GiB - 1
	binary.LittleEndian.PutUint32(hdr[hdrSize-4:], crc32.ChecksumIEEE(hdr[:hdrSize-4]))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := LZMA.Decompress(nil, enc, 1<<20)
	runtime.ReadMemStats(&after)
	if err != nil || string(got) != "hello hello hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if spent := after.TotalAlloc - before.TotalAlloc; spent > 4<<20 {
		t.Errorf("decoding allocated %d bytes for a forged 4 GiB dictionary and a 1 MiB limit", spent)
	}
}

func TestXZRejects(t *testing.T) {
	t.Parallel()
	enc, _ := LZMA.Append(nil, []byte("hello"))
	lzmaAlone := []byte{0x5d, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}
	cases := map[string][]byte{
		"lzma alone":   lzmaAlone,
		"magic only":   xzMagic,
		"header only":  enc[:12],
		"no footer":    enc[:len(enc)-12],
		"bad footer":   append(append([]byte(nil), enc[:len(enc)-2]...), 'Y', 'Y'),
		"trailing one": append(append([]byte(nil), enc...), 1),
	}
	for name, in := range cases {
		if _, err := LZMA.Decompress(nil, in, 0); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestXZVarint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []byte
		want uint64
		ok   bool
	}{
		{[]byte{0}, 0, true},
		{[]byte{0x7f}, 127, true},
		{[]byte{0x80, 0x01}, 128, true},
		{[]byte{0x80, 0x00}, 0, false}, // redundant zero byte
		{[]byte{0x80}, 0, false},       // truncated
		{bytes.Repeat([]byte{0xff}, 10), 0, false},
	}
	for _, tt := range tests {
		got, _, ok := xzVarint(tt.in, 0)
		if got != tt.want || ok != tt.ok {
			t.Errorf("xzVarint(% x) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
