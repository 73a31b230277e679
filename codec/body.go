package codec

import "strconv"

// DefaultEmbed is the embed element Celery writes when a task has no
// callbacks, errbacks, chain or chord.
const DefaultEmbed = `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}`

// Content types and encodings Celery uses (celery-wire.md §9.1).
const (
	ContentTypeJSON    = "application/json"
	ContentTypeMsgpack = "application/x-msgpack"
	ContentTypeYAML    = "application/x-yaml"
	ContentTypePickle  = "application/x-python-serialize"
	EncodingUTF8       = "utf-8"
	EncodingBinary     = "binary"
)

// AppendJSONBody appends a protocol-2 JSON body [args, kwargs, embed] with
// Python's separators. args must be JSON array text (empty means []),
// kwargs object text (empty means {}), embed object text (empty means
// DefaultEmbed). The parts are copied as given, not validated.
func AppendJSONBody(dst, args, kwargs, embed []byte) []byte {
	dst = append(dst, '[')
	dst = appendRawOr(dst, args, "[]")
	dst = append(dst, ", "...)
	dst = appendRawOr(dst, kwargs, "{}")
	dst = append(dst, ", "...)
	dst = appendRawOr(dst, embed, DefaultEmbed)
	return append(dst, ']')
}

// AppendJSONArrayElems appends views of the elements of the JSON array src
// to dst, in order, and returns dst: a task's positional arguments, for
// example, each left for the caller to decode. src is validated as exactly
// one JSON array (nesting at most MaxDepth). Errors are *DecodeError
// wrapping ErrBodyShape (src is not an array), ErrSyntax, ErrTruncated or
// ErrTooDeep. It allocates only to grow dst.
func AppendJSONArrayElems(dst [][]byte, src []byte) ([][]byte, error) {
	s := scanner{src: src}
	if c := s.peek(); c != '[' {
		if c == 0 {
			return dst, withPlace(s.err(), "array", "")
		}
		return dst, &DecodeError{Part: "array", Err: ErrBodyShape, Detail: "want an array, got " + kindName(c)}
	}
	_ = s.open('[')
	for first := true; ; first = false {
		done, err := s.elem(first)
		if err != nil {
			return dst, withPlace(err, "array", "")
		}
		if done {
			break
		}
		v, err := s.skip()
		if err != nil {
			return dst, withPlace(err, "array", "")
		}
		dst = append(dst, v)
	}
	if err := s.end(); err != nil {
		return dst, withPlace(err, "array", "")
	}
	return dst, nil
}

// SplitJSONBody checks that body is exactly a JSON 3-array [args, kwargs,
// embed] with args an array, kwargs an object and embed an object or null,
// and returns views of the three elements (embed is nil when null). The
// whole body is validated as JSON (nesting at most MaxDepth). Errors are
// *DecodeError wrapping ErrBodyShape, ErrSyntax, ErrTruncated or
// ErrTooDeep. It does not allocate on success.
func SplitJSONBody(body []byte) (args, kwargs, embed []byte, err error) {
	s := scanner{src: body}
	if c := s.peek(); c != '[' {
		if c == 0 {
			return nil, nil, nil, withPlace(s.err(), "body", "")
		}
		return nil, nil, nil, &DecodeError{Part: "body", Err: ErrBodyShape, Detail: "want a 3-element array, got " + kindName(c)}
	}
	_ = s.open('[')
	var parts [3][]byte
	n := 0
	for first := true; ; first = false {
		done, err := s.elem(first)
		if err != nil {
			return nil, nil, nil, withPlace(err, "body", "")
		}
		if done {
			break
		}
		c := s.peek()
		v, err := s.skip()
		if err != nil {
			return nil, nil, nil, withPlace(err, "body", "")
		}
		if n < 3 {
			parts[n] = v
			want := [3]string{"array", "object", "object or null"}[n]
			ok := (n == 0 && c == '[') || (n == 1 && c == '{') || (n == 2 && (c == '{' || c == 'n'))
			if !ok {
				return nil, nil, nil, &DecodeError{Part: "body", Field: [3]string{"args", "kwargs", "embed"}[n],
					Err: ErrBodyShape, Detail: "want " + want + ", got " + kindName(c)}
			}
		}
		n++
	}
	if err := s.end(); err != nil {
		return nil, nil, nil, withPlace(err, "body", "")
	}
	if n != 3 {
		return nil, nil, nil, &DecodeError{Part: "body", Err: ErrBodyShape,
			Detail: "want 3 elements [args, kwargs, embed], got " + strconv.Itoa(n)}
	}
	if parts[2][0] == 'n' {
		parts[2] = nil
	}
	return parts[0], parts[1], parts[2], nil
}
