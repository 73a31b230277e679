package serializer

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/goccy/go-json/jsontext"
	jsonv2 "github.com/goccy/go-json/v2"
)

// The JSON rules (kombu 5.2 on output, 5.2 and 5.3 on input) are described
// in doc.go.

// ---- encoding ----

// jsonFast encodes values that contain no time.Time or []byte: encoding/json
// semantics without HTML escaping. jsonHooked adds kombu's time format and
// the refusal of []byte, at about twice the cost per value, which is why
// needsEncodeHooks picks (BenchmarkJSONAppend/hooks shows the difference).
var (
	jsonFast   = jsonv2.JoinOptions(json.DefaultOptionsV1(), jsontext.EscapeForHTML(false))
	jsonHooked = jsonv2.JoinOptions(json.DefaultOptionsV1(), jsontext.EscapeForHTML(false),
		jsonv2.WithMarshalers(jsonv2.JoinMarshalers(
			jsonv2.MarshalToFunc(marshalKombuTime),
			jsonv2.MarshalToFunc(func(*jsontext.Encoder, []byte) error { return errBytesJSON }),
			jsonv2.MarshalToFunc(marshalPyFloat64),
			jsonv2.MarshalToFunc(marshalPyFloat32),
		)))
)

// marshalPyFloat64 writes a float as Python's json.dumps does, with a
// fraction or exponent (100.0, not 100), so that Python reads a float back.
func marshalPyFloat64(enc *jsontext.Encoder, f float64) error {
	var buf [32]byte
	b, err := appendPyFloat(buf[:0], f, 64)
	if err != nil {
		return err
	}
	return enc.WriteValue(b)
}

func marshalPyFloat32(enc *jsontext.Encoder, f float32) error {
	var buf [32]byte
	b, err := appendPyFloat(buf[:0], float64(f), 32)
	if err != nil {
		return err
	}
	return enc.WriteValue(b)
}

// floatNeedsHook reports whether encoding/json would write f so that Python
// reads it as an int (an integral value below 1e21, written without a
// fraction), or cannot write it (NaN, infinities).
func floatNeedsHook(f float64) bool {
	return f == math.Trunc(f) && math.Abs(f) < 1e21 || math.IsNaN(f)
}

// errBytesJSON is kombu 5.2's EncodeError for bytes.
var errBytesJSON = fmt.Errorf("%w: []byte has no JSON form in kombu 5.2 (Python raises EncodeError for bytes); send a string, or use msgpack", ErrUnsupported)

func marshalKombuTime(enc *jsontext.Encoder, t time.Time) error {
	var buf [48]byte
	b, err := appendKombuTime(append(buf[:0], '"'), t)
	if err != nil {
		return err
	}
	return enc.WriteValue(append(b, '"'))
}

// appendKombuTime appends t as Python's datetime.isoformat() of an aware
// datetime, with kombu 5.2's "+00:00" -> "Z".
func appendKombuTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 1 || y > 9999 {
		return dst, fmt.Errorf("%w: year %d is outside Python's datetime range (1-9999)", ErrUnsupported, y)
	}
	dst = appendDigits(dst, t.Year(), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(t.Month()), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, t.Day(), 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, t.Second(), 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = append(dst, '.')
		dst = appendDigits(dst, us, 6)
	}
	_, off := t.Zone()
	if off == 0 {
		return append(dst, 'Z'), nil
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	dst = append(dst, sign)
	dst = appendDigits(dst, off/3600, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, off/60%60, 2)
	if s := off % 60; s != 0 {
		dst = append(dst, ':')
		dst = appendDigits(dst, s, 2)
	}
	return dst, nil
}

// appendDigits appends n zero-padded to width digits.
func appendDigits(dst []byte, n, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(n), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

// maxWalkDepth bounds needsEncodeHooks' walk of nested generic values (and
// guards it against a []any that contains itself).
const maxWalkDepth = 64

// needsEncodeHooks reports whether v may hold a time.Time, a []byte, or a
// float that encoding/json would write as an integer: the values whose
// kombu encoding differs from encoding/json's. Generic values are walked;
// other types are judged by their static type.
func needsEncodeHooks(v any, depth int) bool {
	if depth > maxWalkDepth {
		return true
	}
	switch x := v.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		json.Number, []string, []int, []int64, map[string]string:
		return false
	case float64:
		return floatNeedsHook(x)
	case float32:
		return floatNeedsHook(float64(x))
	case []any:
		for _, e := range x {
			if needsEncodeHooks(e, depth+1) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range x {
			if needsEncodeHooks(e, depth+1) {
				return true
			}
		}
		return false
	}
	return typeHolds(reflect.TypeOf(v), true)
}

// floatTypes are the types marshalPyFloat64/32 handle.
var (
	float64Type = reflect.TypeFor[float64]()
	float32Type = reflect.TypeFor[float32]()
)

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// holdsCache memoizes typeHolds, one map per value of encoding, keyed by
// reflect.Type (an interface already, so lookups do not allocate).
var holdsCache [2]sync.Map // map[reflect.Type]bool

// typeHolds reports whether a value of type t can contain a time.Time or a
// []byte, or, when encoding is set, a float64/float32 or an interface
// (whose dynamic value could hold any of them).
func typeHolds(t reflect.Type, encoding bool) bool {
	cache := &holdsCache[0]
	if encoding {
		cache = &holdsCache[1]
	}
	if v, ok := cache.Load(t); ok {
		return v.(bool)
	}
	r := typeHoldsWalk(t, encoding, map[reflect.Type]bool{})
	cache.Store(t, r)
	return r
}

func typeHoldsWalk(t reflect.Type, encoding bool, seen map[reflect.Type]bool) bool {
	if t == timeType || t == bytesType || encoding && (t == float64Type || t == float32Type) {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return encoding
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return typeHoldsWalk(t.Elem(), encoding, seen)
	case reflect.Map:
		return typeHoldsWalk(t.Key(), encoding, seen) || typeHoldsWalk(t.Elem(), encoding, seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() || f.Anonymous {
				if typeHoldsWalk(f.Type, encoding, seen) {
					return true
				}
			}
		}
	}
	return false
}

// appendWriter is an io.Writer that appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// WriteByte lets msgpack's encoder use the writer without wrapping it.
func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

var appendWriters = pool[appendWriter]{new: func() *appendWriter { return &appendWriter{} }}

// appendJSON encodes v with opts (nil: choose by needsEncodeHooks).
func appendJSON(dst []byte, v any, opts jsonv2.Options) ([]byte, error) {
	out, err := appendJSONRaw(dst, v, opts)
	if err != nil {
		return dst, fmt.Errorf("serializer: json: %w", err)
	}
	return out, nil
}

// appendJSONRaw is appendJSON with errors not prefixed, for the other
// formats that encode through JSON.
func appendJSONRaw(dst []byte, v any, opts jsonv2.Options) ([]byte, error) {
	if opts == nil {
		opts = jsonFast
		if needsEncodeHooks(v, 0) {
			opts = jsonHooked
		}
	}
	w := appendWriters.get()
	w.b = dst
	err := jsonv2.MarshalWrite(w, v, opts)
	out := w.b
	w.b = nil
	appendWriters.put(w)
	if err != nil {
		return dst, encodeErr(err)
	}
	return out, nil
}

// encodeErr marks an encoder's error as ErrUnsupported unless it is already.
func encodeErr(err error) error {
	if errors.Is(err, ErrUnsupported) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnsupported, err)
}

// ---- decoding ----

// jsonDecodeHooked decodes like encoding/json plus kombu's time formats and
// tagged values for time.Time and []byte targets.
var jsonDecodeHooked = jsonv2.JoinOptions(json.DefaultOptionsV1(),
	jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(
		jsonv2.UnmarshalFromFunc(unmarshalKombuTime),
		jsonv2.UnmarshalFromFunc(unmarshalKombuBytes),
	)))

func decodeJSON(data []byte, v any) error {
	if err := decodeJSONRaw(data, v); err != nil {
		return fmt.Errorf("serializer: json: %w", err)
	}
	return nil
}

// decodeJSONRaw is decodeJSON with errors not prefixed, for the other
// formats that decode through JSON.
func decodeJSONRaw(data []byte, v any) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty body", ErrDecode)
	}
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || reflect.ValueOf(v).IsNil() {
		return fmt.Errorf("%w: Decode needs a non-nil pointer, not %T", ErrUnsupported, v)
	}
	var err error
	if typeHolds(t, false) {
		err = jsonv2.Unmarshal(data, v, jsonDecodeHooked)
	} else {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

// kombuTag is kombu 5.3's tagged value.
type kombuTag struct {
	Type  string          `json:"__type__"`
	Value json.RawMessage `json:"__value__"`
}

// readTag reads a kombu 5.3 tagged value: an object with exactly the keys
// "__type__" and "__value__".
func readTag(dec *jsontext.Decoder) (kombuTag, error) {
	raw, err := dec.ReadValue()
	if err != nil {
		return kombuTag{}, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return kombuTag{}, err
	}
	var tag kombuTag
	if len(keys) != 2 || json.Unmarshal(raw, &tag) != nil || tag.Type == "" || tag.Value == nil {
		return kombuTag{}, fmt.Errorf("object %.40s is not a kombu tagged value", raw)
	}
	return tag, nil
}

func unmarshalKombuTime(dec *jsontext.Decoder, t *time.Time) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken() // null leaves the value as it is
		return err
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		pt, err := parseKombuTime(tok.String())
		if err != nil {
			return err
		}
		*t = pt
		return nil
	case '{':
		tag, err := readTag(dec)
		if err != nil {
			return err
		}
		if tag.Type != "datetime" && tag.Type != "date" {
			return fmt.Errorf("a kombu %q value cannot fill a time.Time", tag.Type)
		}
		var s string
		if err := json.Unmarshal(tag.Value, &s); err != nil {
			return err
		}
		pt, err := parseKombuTime(s)
		if err != nil {
			return err
		}
		*t = pt
		return nil
	}
	return errors.New("a time.Time takes an ISO 8601 string or a kombu datetime tag")
}

// timeLayouts are the forms parseKombuTime accepts, tried in order.
var timeLayouts = []string{
	time.RFC3339Nano,                      // kombu 5.2 ("Z") and 5.3 ("+00:00") datetimes
	"2006-01-02T15:04:05.999999999",       // naive datetime: UTC
	"2006-01-02 15:04:05.999999999Z07:00", // str(datetime), PyYAML
	"2006-01-02 15:04:05.999999999",
	"2006-01-02", // date
}

// parseKombuTime parses the time formats Python and kombu write. Naive
// values are taken as UTC.
func parseKombuTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date or datetime", s)
}

func unmarshalKombuBytes(dec *jsontext.Decoder, b *[]byte) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		*b = nil
		return err
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		*b = append((*b)[:0], tok.String()...)
		return nil
	case '{':
		tag, err := readTag(dec)
		if err != nil {
			return err
		}
		var s string
		if err := json.Unmarshal(tag.Value, &s); err != nil {
			return err
		}
		switch tag.Type {
		case "bytes":
			*b = append((*b)[:0], s...)
			return nil
		case "base64":
			out, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return err
			}
			*b = out
			return nil
		}
		return fmt.Errorf("a kombu %q value cannot fill a []byte", tag.Type)
	}
	return errors.New("a []byte takes a string or a kombu bytes/base64 tag")
}

// ---- generic trees ----

// jsonToTree decodes JSON into a generic tree of nil, bool, string,
// int64/uint64 (integers), float64, []any and map[string]any, keeping
// integers exact, as the source of FromJSON.
func jsonToTree(data []byte) (any, error) {
	if !json.Valid(data) {
		return nil, fmt.Errorf("serializer: json: %w: invalid JSON", ErrDecode)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("serializer: json: %w: %w", ErrDecode, err)
	}
	return numbersToGo(v)
}

// numbersToGo replaces the json.Numbers of a decoded tree with int64,
// uint64 or float64.
func numbersToGo(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !bytes.ContainsAny([]byte(s), ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u, nil
			}
			return nil, fmt.Errorf("%w: integer %s does not fit 64 bits", ErrUnsupported, s)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %s: %w", ErrUnsupported, s, err)
		}
		return f, nil
	case []any:
		for i, e := range x {
			var err error
			if x[i], err = numbersToGo(e); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range x {
			n, err := numbersToGo(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	}
	return v, nil
}

// appendPyFloat appends f as a JSON number that Python reads back as a
// float: shortest form, with ".0" added when it would look like an integer.
// NaN and infinities have no JSON form.
// bits is 32 for a float32, written in its own shortest form.
func appendPyFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%w: %v has no JSON form", ErrUnsupported, f)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'g', -1, bits)
	if !bytes.ContainsAny(dst[start:], ".eE") {
		dst = append(dst, '.', '0')
	}
	return dst, nil
}

// appendJSONString appends s as a JSON string, which must be valid UTF-8.
func appendJSONString(dst []byte, s []byte) ([]byte, error) {
	if !utf8.Valid(s) {
		return dst, fmt.Errorf("%w: text is not valid UTF-8", ErrUnsupported)
	}
	return jsontext.AppendQuote(dst, s)
}

// validJSON reports whether data is exactly one valid JSON value.
func validJSON(data []byte) bool { return json.Valid(data) }
