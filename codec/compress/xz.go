package compress

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"

	"github.com/ulikunitz/xz/lzma"
)

// The .xz container (https://tukaani.org/xz/xz-file-format.txt) is read here
// rather than by github.com/ulikunitz/xz's Reader, because that reader
// allocates the dictionary a block header asks for, up to 4 GiB, before it
// decodes a byte, and at least 8 MiB for every body Python writes (preset
// 6). Here each block's LZMA2 chunk headers are walked first: they announce
// the block's output size, so a bomb fails with ErrTooLarge before any
// decoding, and the dictionary is sized to that output (a back-reference
// cannot reach before the start of the output), never beyond the limit.
// The LZMA2 data itself is decoded by ulikunitz/xz/lzma.
//
// What is read: one or more streams, separated by stream padding, each a
// header, blocks whose filter chain is a single LZMA2 filter (what Python's
// lzma.compress and ulikunitz's writer produce), the index and the footer.
// Every CRC32 of the container is checked, so is each block's check (none,
// CRC32, CRC64 or SHA-256), and the index against the blocks. Python's
// FORMAT_ALONE (.lzma) and raw streams are not kombu's format and are
// rejected.

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

var crc64Table = crc64.MakeTable(crc64.ECMA)

// xzRecord is an index record: a block's unpadded and uncompressed sizes.
type xzRecord struct{ unpadded, uncompressed uint64 }

func xzErr(format string, args ...any) error {
	return fmt.Errorf("%w: xz: "+format, append([]any{ErrCorrupt}, args...)...)
}

// decompressXZ appends the content of the xz streams in src to dst.
func decompressXZ(dst, src []byte, limit int64) ([]byte, error) {
	start := len(dst)
	in := src
	for streams := 0; ; streams++ {
		if streams > 0 {
			// Stream padding: zero bytes in multiples of four.
			n := 0
			for n < len(in) && in[n] == 0 {
				n++
			}
			if n%4 != 0 {
				return dst, xzErr("stream padding of %d bytes is not a multiple of 4", n)
			}
			in = in[n:]
			if len(in) == 0 {
				return dst, nil
			}
		}
		var err error
		dst, in, err = xzStream(dst, in, limit-int64(len(dst)-start))
		if err != nil {
			return dst, err
		}
	}
}

// xzStream decodes one stream at the start of in, appending at most limit
// bytes to dst, and returns the input after it.
func xzStream(dst, in []byte, limit int64) ([]byte, []byte, error) {
	start := len(dst)
	if len(in) < 12 {
		return dst, in, xzErr("truncated stream header")
	}
	if !bytes.Equal(in[:6], xzMagic) {
		return dst, in, xzErr("not an xz stream (bad magic bytes)")
	}
	flags := in[6:8]
	if crc32.ChecksumIEEE(flags) != binary.LittleEndian.Uint32(in[8:12]) {
		return dst, in, xzErr("stream header CRC32 mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return dst, in, xzErr("unsupported stream flags %x", flags)
	}
	checkType := flags[1]
	var checkSize int
	switch checkType {
	case 0x00:
	case 0x01:
		checkSize = 4
	case 0x04:
		checkSize = 8
	case 0x0a:
		checkSize = 32
	default:
		return dst, in, xzErr("unsupported check type %#x", checkType)
	}
	pos := 12
	var recordsBuf [4]xzRecord
	records := recordsBuf[:0]
	for {
		if pos >= len(in) {
			return dst, in, xzErr("truncated stream: no index")
		}
		if in[pos] == 0 {
			break // the index indicator
		}
		blockStart := len(dst)
		var unpadded int
		var err error
		dst, unpadded, err = xzBlock(dst, in[pos:], limit-int64(blockStart-start))
		if err != nil {
			return dst, in, err
		}
		pos += unpadded
		for pos%4 != 0 { // block padding; stream offsets are multiples of 4
			if pos >= len(in) || in[pos] != 0 {
				return dst, in, xzErr("bad block padding")
			}
			pos++
		}
		if len(in)-pos < checkSize {
			return dst, in, xzErr("truncated block check")
		}
		if !xzCheckOK(checkType, dst[blockStart:], in[pos:pos+checkSize]) {
			return dst, in, xzErr("block check mismatch")
		}
		pos += checkSize
		records = append(records, xzRecord{uint64(unpadded + checkSize), uint64(len(dst) - blockStart)})
	}

	// Index.
	indexStart := pos
	pos++
	n, pos, ok := xzVarint(in, pos)
	if !ok || n != uint64(len(records)) {
		return dst, in, xzErr("index does not list the %d block(s)", len(records))
	}
	for _, r := range records {
		var u, un uint64
		u, pos, ok = xzVarint(in, pos)
		if ok {
			un, pos, ok = xzVarint(in, pos)
		}
		if !ok || u != r.unpadded || un != r.uncompressed {
			return dst, in, xzErr("index does not match the blocks")
		}
	}
	for (pos-indexStart)%4 != 0 {
		if pos >= len(in) || in[pos] != 0 {
			return dst, in, xzErr("bad index padding")
		}
		pos++
	}
	if len(in)-pos < 4+12 {
		return dst, in, xzErr("truncated index or footer")
	}
	if crc32.ChecksumIEEE(in[indexStart:pos]) != binary.LittleEndian.Uint32(in[pos:]) {
		return dst, in, xzErr("index CRC32 mismatch")
	}
	pos += 4
	indexSize := pos - indexStart

	// Footer: CRC32, backward size, stream flags, "YZ".
	footer := in[pos : pos+12]
	if crc32.ChecksumIEEE(footer[4:10]) != binary.LittleEndian.Uint32(footer) {
		return dst, in, xzErr("stream footer CRC32 mismatch")
	}
	if uint64(binary.LittleEndian.Uint32(footer[4:]))+1 != uint64(indexSize/4) {
		return dst, in, xzErr("stream footer backward size mismatch")
	}
	if !bytes.Equal(footer[8:10], flags) || footer[10] != 'Y' || footer[11] != 'Z' {
		return dst, in, xzErr("bad stream footer")
	}
	return dst, in[pos+12:], nil
}

// xzBlock decodes the block at the start of in (header and compressed
// data), appending at most limit bytes to dst. It returns the size of the
// header and compressed data, which block padding then aligns.
func xzBlock(dst, in []byte, limit int64) ([]byte, int, error) {
	hdrSize := (int(in[0]) + 1) * 4
	if len(in) < hdrSize {
		return dst, 0, xzErr("truncated block header")
	}
	hdr := in[:hdrSize]
	if crc32.ChecksumIEEE(hdr[:hdrSize-4]) != binary.LittleEndian.Uint32(hdr[hdrSize-4:]) {
		return dst, 0, xzErr("block header CRC32 mismatch")
	}
	bflags := hdr[1]
	if bflags&0x3c != 0 {
		return dst, 0, xzErr("unsupported block flags %#x", bflags)
	}
	body := hdr[:hdrSize-4]
	pos := 2
	compressed, uncompressed := int64(-1), int64(-1)
	var v uint64
	ok := true
	if bflags&0x40 != 0 {
		v, pos, ok = xzVarint(body, pos)
		compressed = int64(v)
	}
	if ok && bflags&0x80 != 0 {
		v, pos, ok = xzVarint(body, pos)
		uncompressed = int64(v)
	}
	if !ok {
		return dst, 0, xzErr("bad block header sizes")
	}
	if bflags&0x03 != 0 {
		return dst, 0, xzErr("unsupported filter chain of %d filters (only LZMA2 alone)", bflags&3+1)
	}
	id, pos, ok := xzVarint(body, pos)
	if !ok || id != 0x21 {
		return dst, 0, xzErr("unsupported filter %#x (only LZMA2)", id)
	}
	var propsSize uint64
	propsSize, pos, ok = xzVarint(body, pos)
	if !ok || propsSize != 1 || pos >= len(body) {
		return dst, 0, xzErr("bad LZMA2 filter properties")
	}
	prop := body[pos]
	pos++
	if prop > 40 {
		return dst, 0, xzErr("bad LZMA2 dictionary size code %d", prop)
	}
	for _, b := range body[pos:] {
		if b != 0 {
			return dst, 0, xzErr("bad block header padding")
		}
	}
	data := in[hdrSize:]
	if compressed >= 0 {
		if compressed > int64(len(data)) {
			return dst, 0, xzErr("truncated block data")
		}
		data = data[:compressed]
	}
	// The LZMA2 chunk headers tell the block's output size before anything
	// is decoded: a bomb stops here, and the dictionary need not be larger
	// than the output, since no back-reference reaches before its start.
	size, ok := lzma2Size(data)
	if !ok {
		return dst, 0, xzErr("bad LZMA2 chunk headers")
	}
	if uncompressed >= 0 && size != uncompressed {
		return dst, 0, xzErr("block uncompressed size mismatch")
	}
	if size > limit {
		return dst, 0, ErrTooLarge
	}
	dict := int64(lzma.MaxDictCap)
	if prop < 40 {
		dict = int64(2|prop&1) << (prop/2 + 11)
	}
	dict = max(min(dict, size), lzma.MinDictCap)

	br := bytes.NewReader(data)
	r, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(br)
	if err != nil {
		return dst, 0, err
	}
	blockStart := len(dst)
	dst, err = readBounded(dst, r, limit, int(size))
	if err != nil {
		return dst, 0, err
	}
	used := len(data) - br.Len()
	if compressed >= 0 && int64(used) != compressed {
		return dst, 0, xzErr("block compressed size mismatch")
	}
	if int64(len(dst)-blockStart) != size {
		return dst, 0, xzErr("block output differs from its chunk headers")
	}
	return dst, hdrSize + used, nil
}

// xzCheckOK verifies a block's check field against its content.
func xzCheckOK(checkType byte, content, check []byte) bool {
	switch checkType {
	case 0x01:
		return crc32.ChecksumIEEE(content) == binary.LittleEndian.Uint32(check)
	case 0x04:
		return crc64.Checksum(content, crc64Table) == binary.LittleEndian.Uint64(check)
	case 0x0a:
		sum := sha256.Sum256(content)
		return bytes.Equal(sum[:], check)
	}
	return true
}

// xzVarint reads the xz multibyte integer at b[pos:]: at most 9 bytes, 7
// bits each, little end first, without a redundant final zero byte. The
// value is below 2^63.
func xzVarint(b []byte, pos int) (uint64, int, bool) {
	var v uint64
	for i := range 9 {
		if pos >= len(b) {
			return 0, pos, false
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, pos, i == 0 || c != 0
		}
	}
	return 0, pos, false
}

// lzma2Size walks the chunk headers of the LZMA2 data at the start of b,
// without decoding, and returns the uncompressed size they announce. ok is
// false if the headers are malformed or truncated.
func lzma2Size(b []byte) (size int64, ok bool) {
	pos := 0
	for pos < len(b) {
		c := b[pos]
		switch {
		case c == 0: // end of data
			return size, true
		case c == 1 || c == 2: // uncompressed chunk
			if len(b)-pos < 3 {
				return 0, false
			}
			n := int(binary.BigEndian.Uint16(b[pos+1:])) + 1
			size += int64(n)
			pos += 3 + n
		case c >= 0x80: // LZMA chunk
			if len(b)-pos < 5 {
				return 0, false
			}
			size += int64(c&0x1f)<<16 + int64(binary.BigEndian.Uint16(b[pos+1:])) + 1
			n := int(binary.BigEndian.Uint16(b[pos+3:])) + 1
			pos += 5 + n
			if c>>5&3 >= 2 { // new properties
				pos++
			}
		default:
			return 0, false
		}
	}
	return 0, false
}
