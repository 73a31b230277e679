package serializer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// The msgpack rules are described in doc.go.

// maxDepth bounds the nesting of msgpack values we decode (as goccy/go-json
// bounds JSON at 10000).
const maxDepth = 10000

type msgpackEncoder struct {
	enc *msgpack.Encoder
	out appendWriter
}

var msgpackEncoders = pool[msgpackEncoder]{new: func() *msgpackEncoder {
	e := &msgpackEncoder{}
	e.enc = msgpack.NewEncoder(&e.out)
	e.enc.SetCustomStructTag("json")
	e.enc.UseCompactInts(true)
	return e
}}

func appendMsgpack(dst []byte, v any) ([]byte, error) {
	e := msgpackEncoders.get()
	e.out.b = dst
	err := e.enc.Encode(v)
	out := e.out.b
	e.out.b = nil
	msgpackEncoders.put(e)
	if err != nil {
		return dst, fmt.Errorf("serializer: msgpack: %w", encodeErr(err))
	}
	// Python's unpackb (msgpack >= 1.0, strict_map_key) refuses map keys
	// other than str and bytes, and a Celery worker then drops the message:
	// refuse to write one.
	r := mpReader{b: out[len(dst):]}
	if err := r.checkKeys(0, false); err != nil {
		return dst, err
	}
	return out, nil
}

// checkKeys walks one value and fails on a map key that is not str or bin.
func (r *mpReader) checkKeys(depth int, key bool) error {
	if depth > maxDepth {
		return mpErr("nested deeper than %d levels", maxDepth)
	}
	v, err := r.next()
	if err != nil {
		return err
	}
	if key && v.kind != mpStr && v.kind != mpBin {
		return fmt.Errorf("serializer: msgpack: %w: a map key that is not a string (Python's msgpack refuses it with strict_map_key, and the worker drops the message)", ErrUnsupported)
	}
	switch v.kind {
	case mpArray:
		for range v.n {
			if err := r.checkKeys(depth+1, false); err != nil {
				return err
			}
		}
	case mpMap:
		for range v.n {
			if err := r.checkKeys(depth+1, true); err != nil {
				return err
			}
			if err := r.checkKeys(depth+1, false); err != nil {
				return err
			}
		}
	}
	return nil
}

type msgpackDecoder struct {
	dec *msgpack.Decoder
	in  bytes.Reader
}

var msgpackDecoders = pool[msgpackDecoder]{new: func() *msgpackDecoder {
	d := &msgpackDecoder{}
	d.dec = msgpack.NewDecoder(&d.in)
	return d
}}

func decodeMsgpack(data []byte, v any) error {
	switch p := v.(type) {
	case *any:
		tree, err := msgpackToAny(data)
		if err != nil {
			return err
		}
		*p = tree
		return nil
	case *[]any:
		tree, err := msgpackToAny(data)
		if err != nil {
			return err
		}
		if tree == nil {
			*p = nil
			return nil
		}
		a, ok := tree.([]any)
		if !ok {
			return fmt.Errorf("serializer: msgpack: %w: body is a %T, not an array", ErrDecode, tree)
		}
		*p = a
		return nil
	case *map[string]any:
		tree, err := msgpackToAny(data)
		if err != nil {
			return err
		}
		if tree == nil {
			*p = nil
			return nil
		}
		m, ok := tree.(map[string]any)
		if !ok {
			return fmt.Errorf("serializer: msgpack: %w: body is a %T, not a map", ErrDecode, tree)
		}
		*p = m
		return nil
	}
	if rv := reflect.ValueOf(v); !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("serializer: msgpack: %w: Decode needs a non-nil pointer, not %T", ErrUnsupported, v)
	}
	r := mpReader{b: data}
	if err := r.skipAll(); err != nil {
		return err
	}
	d := msgpackDecoders.get()
	defer msgpackDecoders.put(d)
	defer d.in.Reset(nil)
	d.in.Reset(data)
	d.dec.Reset(&d.in)
	d.dec.SetCustomStructTag("json")
	d.dec.UseLooseInterfaceDecoding(true)
	d.dec.SetMapDecoder(decodeLooseMap)
	if err := d.dec.Decode(v); err != nil {
		return fmt.Errorf("serializer: msgpack: %w: %w", ErrDecode, err)
	}
	return nil
}

// decodeLooseMap decodes a map inside an `any` of a typed target into a
// map[string]any, converting non-string keys as json.dumps would.
func decodeLooseMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, min(n, 1024))
	for range n {
		k, err := d.DecodeInterfaceLoose()
		if err != nil {
			return nil, err
		}
		key, err := keyString(k)
		if err != nil {
			return nil, err
		}
		if m[key], err = d.DecodeInterfaceLoose(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// keyString converts a decoded map key to the string json.dumps makes of it.
func keyString(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case []byte:
		if utf8.Valid(x) {
			return string(x), nil
		}
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		b, err := appendPyFloat(nil, x, 64)
		return string(b), err
	}
	return "", fmt.Errorf("%w: a map key of type %T has no JSON form", ErrUnsupported, k)
}

// ---- the msgpack reader ----

type mpKind uint8

const (
	mpNil mpKind = iota
	mpBool
	mpInt
	mpUint
	mpFloat
	mpStr
	mpBin
	mpArray
	mpMap
	mpExt
)

// mpValue is one msgpack item: a scalar, or the header of an array or map
// (n items follow), or a str/bin/ext payload (a view of the input).
type mpValue struct {
	kind mpKind
	b    bool
	i    int64
	u    uint64
	f    float64
	n    int
	data []byte
	ext  int8
}

// mpReader reads msgpack items from b.
type mpReader struct {
	b   []byte
	pos int
}

func mpErr(format string, args ...any) error {
	return fmt.Errorf("serializer: msgpack: %w: "+format, append([]any{ErrDecode}, args...)...)
}

var errMpTruncated = mpErr("truncated body")

func (r *mpReader) take(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.pos < n {
		return nil, errMpTruncated
	}
	p := r.b[r.pos : r.pos+n]
	r.pos += n
	return p, nil
}

func (r *mpReader) uint(size int) (uint64, error) {
	p, err := r.take(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// count reads an array or map length, which must leave room for at least
// one byte per item.
func (r *mpReader) count(size, perItem int) (int, error) {
	n, err := r.uint(size)
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.pos)/uint64(perItem) {
		return 0, mpErr("a collection of %d items cannot fit in the %d bytes left", n, len(r.b)-r.pos)
	}
	return int(n), nil
}

func (r *mpReader) payload(size int) ([]byte, error) {
	n, err := r.uint(size)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.pos) {
		return nil, errMpTruncated
	}
	return r.take(int(n))
}

func (r *mpReader) next() (mpValue, error) {
	p, err := r.take(1)
	if err != nil {
		return mpValue{}, err
	}
	c := p[0]
	switch {
	case c <= 0x7f:
		return mpValue{kind: mpInt, i: int64(c)}, nil
	case c >= 0xe0:
		return mpValue{kind: mpInt, i: int64(int8(c))}, nil
	case c <= 0x8f:
		n, err := r.checkCount(int(c&0x0f), 2)
		return mpValue{kind: mpMap, n: n}, err
	case c <= 0x9f:
		n, err := r.checkCount(int(c&0x0f), 1)
		return mpValue{kind: mpArray, n: n}, err
	case c <= 0xbf:
		d, err := r.take(int(c & 0x1f))
		return mpValue{kind: mpStr, data: d}, err
	}
	var v mpValue
	switch c {
	case 0xc0:
		v.kind = mpNil
	case 0xc2, 0xc3:
		v.kind, v.b = mpBool, c == 0xc3
	case 0xc4, 0xc5, 0xc6:
		v.kind = mpBin
		v.data, err = r.payload(1 << (c - 0xc4))
	case 0xc7, 0xc8, 0xc9:
		var n uint64
		if n, err = r.uint(1 << (c - 0xc7)); err == nil {
			v, err = r.ext(int(min(n, math.MaxInt32)))
		}
	case 0xca:
		var u uint64
		u, err = r.uint(4)
		v.kind, v.f = mpFloat, float64(math.Float32frombits(uint32(u)))
	case 0xcb:
		var u uint64
		u, err = r.uint(8)
		v.kind, v.f = mpFloat, math.Float64frombits(u)
	case 0xcc, 0xcd, 0xce, 0xcf:
		v.kind = mpUint
		v.u, err = r.uint(1 << (c - 0xcc))
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size := 1 << (c - 0xd0)
		var u uint64
		u, err = r.uint(size)
		v.kind = mpInt
		switch size {
		case 1:
			v.i = int64(int8(u))
		case 2:
			v.i = int64(int16(u))
		case 4:
			v.i = int64(int32(u))
		default:
			v.i = int64(u)
		}
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		v, err = r.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb:
		v.kind = mpStr
		v.data, err = r.payload(1 << (c - 0xd9))
	case 0xdc, 0xdd:
		v.kind = mpArray
		v.n, err = r.count(2<<(c-0xdc), 1)
	case 0xde, 0xdf:
		v.kind = mpMap
		v.n, err = r.count(2<<(c-0xde), 2)
	default: // 0xc1 is never used
		return v, mpErr("invalid type byte %#x at offset %d", c, r.pos-1)
	}
	return v, err
}

func (r *mpReader) checkCount(n, perItem int) (int, error) {
	if n*perItem > len(r.b)-r.pos {
		return 0, errMpTruncated
	}
	return n, nil
}

// ext reads an extension's type byte and n bytes of payload.
func (r *mpReader) ext(n int) (mpValue, error) {
	t, err := r.take(1)
	if err != nil {
		return mpValue{}, err
	}
	d, err := r.take(n)
	return mpValue{kind: mpExt, ext: int8(t[0]), data: d}, err
}

// timestamp decodes the msgpack timestamp extension (type -1).
func (v mpValue) timestamp() (time.Time, error) {
	if v.ext != -1 {
		return time.Time{}, fmt.Errorf("%w: msgpack extension type %d", ErrUnsupported, v.ext)
	}
	d := v.data
	switch len(d) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(d)), 0).UTC(), nil
	case 8:
		x := binary.BigEndian.Uint64(d)
		return time.Unix(int64(x&(1<<34-1)), int64(x>>34)).UTC(), nil
	case 12:
		return time.Unix(int64(binary.BigEndian.Uint64(d[4:])), int64(binary.BigEndian.Uint32(d))).UTC(), nil
	}
	return time.Time{}, mpErr("timestamp of %d bytes", len(d))
}

// skipAll checks that the input is exactly one well-formed value.
func (r *mpReader) skipAll() error {
	if err := r.skip(0); err != nil {
		return err
	}
	return r.end()
}

func (r *mpReader) end() error {
	if r.pos != len(r.b) {
		return mpErr("%d trailing bytes after the value", len(r.b)-r.pos)
	}
	return nil
}

func (r *mpReader) skip(depth int) error {
	if depth > maxDepth {
		return mpErr("nested deeper than %d levels", maxDepth)
	}
	v, err := r.next()
	if err != nil {
		return err
	}
	n := v.n
	if v.kind == mpMap {
		n *= 2
	} else if v.kind != mpArray {
		return nil
	}
	for range n {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// msgpackToAny decodes one msgpack body into a generic Go value.
func msgpackToAny(data []byte) (any, error) {
	r := mpReader{b: data}
	v, err := r.toAny(0)
	if err == nil {
		err = r.end()
	}
	return v, err
}

func (r *mpReader) toAny(depth int) (any, error) {
	if depth > maxDepth {
		return nil, mpErr("nested deeper than %d levels", maxDepth)
	}
	v, err := r.next()
	if err != nil {
		return nil, err
	}
	switch v.kind {
	case mpNil:
		return nil, nil
	case mpBool:
		return v.b, nil
	case mpInt:
		return v.i, nil
	case mpUint:
		if v.u <= math.MaxInt64 {
			return int64(v.u), nil
		}
		return v.u, nil
	case mpFloat:
		return v.f, nil
	case mpStr:
		if !utf8.Valid(v.data) {
			return nil, errMpStrUTF8
		}
		return string(v.data), nil
	case mpBin:
		return append([]byte(nil), v.data...), nil
	case mpExt:
		t, err := v.timestamp()
		if err != nil {
			return nil, fmt.Errorf("serializer: msgpack: %w", err)
		}
		return t, nil
	case mpArray:
		a := make([]any, v.n)
		for i := range a {
			if a[i], err = r.toAny(depth + 1); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	m := make(map[string]any, v.n)
	for range v.n {
		k, err := r.toAny(depth + 1)
		if err != nil {
			return nil, err
		}
		key, err := keyString(k)
		if err != nil {
			return nil, fmt.Errorf("serializer: msgpack: %w", err)
		}
		if m[key], err = r.toAny(depth + 1); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// msgpackToJSON transcodes one msgpack body to JSON.
func msgpackToJSON(dst, data []byte) ([]byte, error) {
	r := mpReader{b: data}
	out, err := r.toJSON(dst, 0)
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

func (r *mpReader) toJSON(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, mpErr("nested deeper than %d levels", maxDepth)
	}
	v, err := r.next()
	if err != nil {
		return dst, err
	}
	switch v.kind {
	case mpNil:
		return append(dst, "null"...), nil
	case mpBool:
		return strconv.AppendBool(dst, v.b), nil
	case mpInt:
		return strconv.AppendInt(dst, v.i, 10), nil
	case mpUint:
		return strconv.AppendUint(dst, v.u, 10), nil
	case mpFloat:
		return wrapMp(appendPyFloat(dst, v.f, 64))
	case mpStr, mpBin:
		return appendMpText(dst, v)
	case mpExt:
		t, err := v.timestamp()
		if err != nil {
			return dst, fmt.Errorf("serializer: msgpack: %w", err)
		}
		dst = append(dst, '"')
		dst, err = appendKombuTime(dst, t)
		return wrapMp(append(dst, '"'), err)
	case mpArray:
		dst = append(dst, '[')
		for i := range v.n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = r.toJSON(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	dst = append(dst, '{')
	for i := range v.n {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = r.keyJSON(dst); err != nil {
			return dst, err
		}
		dst = append(dst, ':')
		if dst, err = r.toJSON(dst, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// keyJSON writes the next item, a map key, as a JSON object key, converted
// as json.dumps converts keys.
func (r *mpReader) keyJSON(dst []byte) ([]byte, error) {
	v, err := r.next()
	if err != nil {
		return dst, err
	}
	var scratch [32]byte
	var key []byte
	switch v.kind {
	case mpStr, mpBin:
		return appendMpText(dst, v)
	case mpNil:
		key = append(scratch[:0], "null"...)
	case mpBool:
		key = strconv.AppendBool(scratch[:0], v.b)
	case mpInt:
		key = strconv.AppendInt(scratch[:0], v.i, 10)
	case mpUint:
		key = strconv.AppendUint(scratch[:0], v.u, 10)
	case mpFloat:
		if key, err = appendPyFloat(scratch[:0], v.f, 64); err != nil {
			return wrapMp(dst, err)
		}
	default:
		return dst, fmt.Errorf("serializer: msgpack: %w: a map key that is an array, map or extension has no JSON form", ErrUnsupported)
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"'), nil
}

// errMpStrUTF8 is unpackb(raw=False)'s refusal of a str that is not UTF-8.
var errMpStrUTF8 = mpErr("str is not valid UTF-8 (Python's unpackb(raw=False) refuses it)")

// appendMpText writes a str or bin as a JSON string: a str must be UTF-8
// (ErrDecode), a bin that is not cannot be carried (ErrUnsupported).
func appendMpText(dst []byte, v mpValue) ([]byte, error) {
	if v.kind == mpStr && !utf8.Valid(v.data) {
		return dst, errMpStrUTF8
	}
	return wrapMp(appendJSONString(dst, v.data))
}

func wrapMp(dst []byte, err error) ([]byte, error) {
	if err != nil {
		return dst, fmt.Errorf("serializer: msgpack: %w", err)
	}
	return dst, nil
}
