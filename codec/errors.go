package codec

import (
	"errors"
	"strings"
)

// Sentinel errors. Decoders wrap them in a *DecodeError that names the part
// and field at fault; test with errors.Is.
var (
	// ErrTruncated means the input ended in the middle of a value.
	ErrTruncated = errors.New("codec: unexpected end of input")
	// ErrSyntax means the input is not well-formed JSON (or not the ISO-8601
	// or base64 text a field requires).
	ErrSyntax = errors.New("codec: syntax error")
	// ErrMissingField means a required field (headers.task, headers.id,
	// properties.delivery_tag, status...) is absent or null.
	ErrMissingField = errors.New("codec: missing required field")
	// ErrFieldType means a field holds a JSON/AMQP value of the wrong type,
	// e.g. a string where an integer belongs.
	ErrFieldType = errors.New("codec: wrong field type")
	// ErrBadValue means a field has the right type but an impossible value
	// (a priority of 300, a month of 13, a NaN time limit).
	ErrBadValue = errors.New("codec: invalid field value")
	// ErrBodyShape means a protocol-2 body is not exactly the 3-array
	// [args (array), kwargs (object), embed (object or null)]. Python's
	// worker crash-loops on a 2-element body, so we refuse to write or
	// accept one.
	ErrBodyShape = errors.New("codec: body is not [args, kwargs, embed]")
	// ErrUnknownMessage means the headers have no "task" and the body is not
	// a protocol-1 task dict either; Celery rejects such a message.
	ErrUnknownMessage = errors.New("codec: unknown message: no task header and no protocol 1 body")
	// ErrTooLarge means an input, or a body after decompression, exceeds
	// the size limit the caller gave.
	ErrTooLarge = errors.New("codec: too large")
	// ErrTooDeep means JSON nesting exceeds MaxDepth.
	ErrTooDeep = errors.New("codec: nesting too deep")
	// ErrBase64 means a body declared as base64 is not valid standard
	// base64.
	ErrBase64 = errors.New("codec: invalid base64")
	// ErrUnsupportedBodyEncoding means properties.body_encoding names a
	// codec other than "base64" (the only one kombu registers).
	ErrUnsupportedBodyEncoding = errors.New("codec: unsupported body encoding")
	// ErrUnsupportedContentType means the body's content type has no
	// decoder here (pickle, or an unknown type).
	ErrUnsupportedContentType = errors.New("codec: unsupported content type")
	// ErrUnsupportedCompression means the compression header names a
	// compressor this build does not know.
	ErrUnsupportedCompression = errors.New("codec: unsupported compression")
)

// MaxDepth bounds JSON nesting (arrays and objects) in everything the
// decoders read, so hostile input cannot exhaust the stack.
const MaxDepth = 256

// DecodeError says which part of a message was wrong and why. Err is one of
// the sentinel errors above (or an error of codec/serializer or
// codec/compress); Unwrap exposes it to errors.Is.
//
// Its message reads like "codec: headers.retries: want integer, got string".
type DecodeError struct {
	Part   string // "envelope", "headers", "properties", "body", "amqp", "result", "signature", "time"...
	Field  string // the field inside Part; empty when the part as a whole is wrong
	Err    error  // the sentinel (or wrapped library) error
	Detail string // optional human detail; defaults to Err's text
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("codec: ")
	b.WriteString(e.Part)
	if e.Field != "" {
		if e.Part != "" {
			b.WriteByte('.')
		}
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	switch {
	case e.Detail != "":
		b.WriteString(e.Detail)
	case e.Err != nil:
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "codec: "))
	default:
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the underlying sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// withPlace fills in Part/Field on a *DecodeError that has none yet, or
// wraps a plain error; it is how nested decoders report their position.
func withPlace(err error, part, field string) error {
	if err == nil {
		return nil
	}
	var de *DecodeError
	if errors.As(err, &de) {
		if de.Part == "" {
			de.Part = part
			if de.Field == "" {
				de.Field = field
			}
		}
		return err
	}
	return &DecodeError{Part: part, Field: field, Err: err}
}

func typeError(part, field, want string, got byte) error {
	return &DecodeError{Part: part, Field: field, Err: ErrFieldType,
		Detail: "want " + want + ", got " + kindName(got)}
}

// kindName names the JSON type that starts with byte c.
func kindName(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return "invalid JSON"
}
