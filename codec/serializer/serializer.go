package serializer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/celerity-go/celerity/internal/unsafeconv"
)

var (
	// ErrContentDisallowed reports a content type the receiver does not
	// accept (Celery's ContentDisallowed), and every use of pickle.
	ErrContentDisallowed = errors.New("content disallowed")
	// ErrUnknownContentType reports a serializer name or content type that
	// kombu does not define or celerity does not implement.
	ErrUnknownContentType = errors.New("unknown content type")
	// ErrUnsupported reports a value the format cannot carry the way kombu
	// would: []byte or a NaN in JSON, a non-UTF-8 msgpack bin in JSON, a
	// Go type the encoder cannot handle, a target that is not a pointer.
	ErrUnsupported = errors.New("value not supported by the format")
	// ErrDecode reports a body that is not valid in its format, or does not
	// fit the target (Celery's DecodeError).
	ErrDecode = errors.New("cannot decode body")
)

type kind uint8

const (
	kindNone kind = iota
	kindJSON
	kindMsgpack
	kindYAML
	kindPickle
	kindRaw
	kindText
)

// Serializer is one of kombu's serializers. The zero Serializer is invalid:
// its methods return ErrUnknownContentType. Serializer is a small value,
// safe for concurrent use.
type Serializer struct {
	// Name is kombu's name ("json", "msgpack", "yaml", "pickle", "raw";
	// "text" is celerity's label for application/text).
	Name string
	// ContentType is the message's content_type.
	ContentType string
	// ContentEncoding is the message's content_encoding.
	ContentEncoding string
	kind            kind
}

// The serializers of kombu 5.2's registry, plus its two raw content types.
var (
	// JSON is kombu's default serializer.
	JSON = Serializer{Name: "json", ContentType: "application/json", ContentEncoding: "utf-8", kind: kindJSON}
	// Msgpack is kombu's msgpack (packb use_bin_type=True, unpackb raw=False).
	Msgpack = Serializer{Name: "msgpack", ContentType: "application/x-msgpack", ContentEncoding: "binary", kind: kindMsgpack}
	// YAML is kombu's yaml (PyYAML safe_dump / safe_load).
	YAML = Serializer{Name: "yaml", ContentType: "application/x-yaml", ContentEncoding: "utf-8", kind: kindYAML}
	// Pickle is known so that it can be named and refused: every method
	// returns ErrContentDisallowed.
	Pickle = Serializer{Name: "pickle", ContentType: "application/x-python-serialize", ContentEncoding: "binary", kind: kindPickle}
	// Raw is application/data: bytes passed through (kombu's "raw", and
	// what kombu assumes when a message has no content type).
	Raw = Serializer{Name: "raw", ContentType: "application/data", ContentEncoding: "binary", kind: kindRaw}
	// Text is application/text: UTF-8 text passed through.
	Text = Serializer{Name: "text", ContentType: "application/text", ContentEncoding: "utf-8", kind: kindText}
)

var registry = [...]*Serializer{&JSON, &Msgpack, &YAML, &Pickle, &Raw, &Text}

// ByName returns the serializer with that name ("json", "msgpack", "yaml",
// "pickle", "raw", "text"), compared case-insensitively.
func ByName(name string) (Serializer, bool) {
	for _, s := range registry {
		if strings.EqualFold(s.Name, name) {
			return *s, true
		}
	}
	return Serializer{}, false
}

// ByContentType returns the serializer for a message's content_type,
// compared case-insensitively (kombu compares exactly; parameters such as
// "; charset=utf-8" are not accepted by either). An empty content type is
// Raw, as kombu reads a message without one as application/data. It does not
// allocate; ct is not retained.
func ByContentType(ct []byte) (Serializer, bool) {
	if r := byContentType(ct); r != nil {
		return *r, true
	}
	return Serializer{}, false
}

// byContentType is ByContentType without the copy; nil = unknown.
func byContentType(ct []byte) *Serializer {
	if len(ct) == 0 {
		return &Raw
	}
	s := unsafeconv.String(ct)
	for _, r := range registry { // exact match first: what every client sends
		if r.ContentType == s {
			return r
		}
	}
	for _, r := range registry {
		if strings.EqualFold(r.ContentType, s) {
			return r
		}
	}
	return nil
}

// errPickle is the refusal of pickle.
var errPickle = fmt.Errorf("serializer: pickle: %w: celerity never encodes or decodes Python pickles (they can run arbitrary code); use json", ErrContentDisallowed)

func (s Serializer) errZero() error {
	return fmt.Errorf("serializer: %w: the zero Serializer", ErrUnknownContentType)
}

// Append encodes v and appends it to dst, which the caller owns, and
// returns the extended slice. v is only read. On error dst is returned with
// its original length. Raw and Text take a []byte or a string.
//
// For JSON, a []any of numbers, strings, bools and nils (a typical args
// array) encodes without allocating when the caller has boxed v once
// (a value converted to `any` at the call allocates, as with any function
// taking `any`).
func (s Serializer) Append(dst []byte, v any) ([]byte, error) {
	switch s.kind {
	case kindJSON:
		return appendJSON(dst, v, nil)
	case kindMsgpack:
		return appendMsgpack(dst, v)
	case kindYAML:
		return appendYAMLTree(dst, v)
	case kindRaw, kindText:
		switch x := v.(type) {
		case []byte:
			return append(dst, x...), nil
		case string:
			return append(dst, x...), nil
		}
		return dst, fmt.Errorf("serializer: %s: %w: it takes []byte or string, not %T", s.Name, ErrUnsupported, v)
	case kindPickle:
		return dst, errPickle
	}
	return dst, s.errZero()
}

// Decode decodes data into the value v points to. data is not retained
// (strings and byte slices in v are copies). See the package documentation
// for how each format maps to Go values.
func (s Serializer) Decode(data []byte, v any) error {
	switch s.kind {
	case kindJSON:
		return decodeJSON(data, v)
	case kindMsgpack:
		return decodeMsgpack(data, v)
	case kindYAML:
		return decodeYAML(data, v)
	case kindRaw, kindText:
		return s.decodeRaw(data, v)
	case kindPickle:
		return errPickle
	}
	return s.errZero()
}

func (s Serializer) decodeRaw(data []byte, v any) error {
	if s.kind == kindText && !utf8.Valid(data) {
		return fmt.Errorf("serializer: text: %w: body is not valid UTF-8", ErrDecode)
	}
	switch p := v.(type) {
	case *[]byte:
		*p = append((*p)[:0], data...)
	case *string:
		*p = string(data)
	case *any:
		if s.kind == kindText {
			*p = string(data)
		} else {
			*p = append([]byte(nil), data...)
		}
	default:
		return fmt.Errorf("serializer: %s: %w: it decodes into *[]byte, *string or *any, not %T", s.Name, ErrUnsupported, v)
	}
	return nil
}

// ToJSON transcodes data, a body in s's format, to JSON appended to dst,
// and returns the extended slice. JSON input is validated and copied.
// Integers stay exact. Values JSON cannot carry fail with ErrUnsupported:
// a msgpack bin or YAML !!binary becomes a JSON string when it is valid
// UTF-8 and is an error otherwise (no base64: kombu has no such
// convention); NaN and infinities are errors; a msgpack timestamp becomes
// kombu's datetime string; map keys become strings as Python's json.dumps
// makes them (1 -> "1", true -> "true", None -> "null"). Raw and Text become
// a JSON string. On error dst is returned with its original length.
func (s Serializer) ToJSON(dst, data []byte) ([]byte, error) {
	switch s.kind {
	case kindJSON:
		if !validJSON(data) {
			return dst, fmt.Errorf("serializer: json: %w: invalid JSON", ErrDecode)
		}
		return append(dst, data...), nil
	case kindMsgpack:
		return msgpackToJSON(dst, data)
	case kindYAML:
		return yamlToJSON(dst, data)
	case kindRaw, kindText:
		out, err := appendJSONString(dst, data)
		if err != nil {
			return dst, fmt.Errorf("serializer: %s: %w", s.Name, err)
		}
		return out, nil
	case kindPickle:
		return dst, errPickle
	}
	return dst, s.errZero()
}

// FromJSON transcodes jsonData to s's format, appended to dst, and returns
// the extended slice. Integers stay exact (beyond 64 bits they fail with
// ErrUnsupported). For Raw and Text the JSON must be a string, whose text
// is appended. On error dst is returned with its original length.
func FromJSON(dst []byte, s Serializer, jsonData []byte) ([]byte, error) {
	switch s.kind {
	case kindJSON:
		return JSON.ToJSON(dst, jsonData)
	case kindRaw, kindText:
		var str string
		if err := decodeJSON(jsonData, &str); err != nil {
			return dst, fmt.Errorf("serializer: %s: FromJSON takes a JSON string: %w", s.Name, err)
		}
		return append(dst, str...), nil
	case kindPickle:
		return dst, errPickle
	case kindNone:
		return dst, s.errZero()
	}
	tree, err := jsonToTree(jsonData)
	if err != nil {
		return dst, err
	}
	if s.kind == kindMsgpack {
		return appendMsgpack(dst, tree)
	}
	return appendYAMLTree(dst, tree)
}

// pool is a typed sync.Pool of *T.
type pool[T any] struct {
	p   sync.Pool
	new func() *T
}

func (p *pool[T]) get() *T {
	if v, ok := p.p.Get().(*T); ok {
		return v
	}
	return p.new()
}

func (p *pool[T]) put(v *T) { p.p.Put(v) }
