package codec

import (
	"math"
	"time"
)

// Typed readers for one JSON value at the scanner's position. They take
// the part and field names only to build errors; on success they do not
// allocate (strings with escapes are decoded into m's scratch).

func fieldErr(err error, part, field string) error { return withPlace(err, part, field) }

// strField reads a string or null (nil).
func (m *Message) strField(s *scanner, part, field string) ([]byte, error) {
	return scratchStr(&m.scratch, s, part, field)
}

// scratchStr reads a string or null (nil); a string with escapes is
// decoded into *scratch.
func scratchStr(scratch *[]byte, s *scanner, part, field string) ([]byte, error) {
	switch c := s.peek(); c {
	case '"':
		raw, esc, err := s.str()
		if err != nil {
			return nil, fieldErr(err, part, field)
		}
		return unescapeInto(scratch, raw, esc), nil
	case 'n':
		if s.null() {
			return nil, nil
		}
		return nil, fieldErr(s.err(), part, field)
	case 0:
		return nil, fieldErr(s.err(), part, field)
	default:
		return nil, typeError(part, field, "string", c)
	}
}

// intField reads an integer (an integral float is accepted); null reads
// as 0 with null=true.
func intField(s *scanner, part, field string) (n int64, null bool, err error) {
	c := s.peek()
	switch {
	case c == 'n':
		if s.null() {
			return 0, true, nil
		}
		return 0, false, fieldErr(s.err(), part, field)
	case c == '-' || (c >= '0' && c <= '9'):
	case c == 0:
		return 0, false, fieldErr(s.err(), part, field)
	default:
		return 0, false, typeError(part, field, "integer", c)
	}
	raw, err := s.number()
	if err != nil {
		return 0, false, fieldErr(err, part, field)
	}
	n, ok := parseInt(raw)
	if !ok {
		return 0, false, &DecodeError{Part: part, Field: field, Err: ErrFieldType,
			Detail: "want integer, got " + string(raw)}
	}
	return n, false, nil
}

// smallIntField reads an integer in [lo, hi]; null reads as 0.
func smallIntField(s *scanner, part, field string, lo, hi int64) (int64, bool, error) {
	n, null, err := intField(s, part, field)
	if err == nil && (n < lo || n > hi) {
		err = &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: "out of range"}
	}
	return n, null, err
}

// floatField reads a finite number or null.
func floatField(s *scanner, part, field string) (f float64, null bool, err error) {
	c := s.peek()
	switch {
	case c == 'n':
		if s.null() {
			return 0, true, nil
		}
		return 0, false, fieldErr(s.err(), part, field)
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
	case c == 0:
		return 0, false, fieldErr(s.err(), part, field)
	default:
		return 0, false, typeError(part, field, "number", c)
	}
	raw, err := s.number()
	if err != nil {
		return 0, false, fieldErr(err, part, field)
	}
	f, ok := parseFloat(raw)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: "want a finite number, got " + string(raw)}
	}
	return f, false, nil
}

// boolField reads true, false or null (false).
func boolField(s *scanner, part, field string) (bool, error) {
	switch c := s.peek(); c {
	case 't', 'f':
		b, err := s.boolean()
		return b, fieldErr(err, part, field)
	case 'n':
		if s.null() {
			return false, nil
		}
		return false, fieldErr(s.err(), part, field)
	case 0:
		return false, fieldErr(s.err(), part, field)
	default:
		return false, typeError(part, field, "boolean", c)
	}
}

// timeField reads an ISO-8601 string or null (zero time).
func (m *Message) timeField(s *scanner, part, field string) (time.Time, error) {
	b, err := m.strField(s, part, field)
	if err != nil || len(b) == 0 {
		return time.Time{}, err
	}
	t, err := ParseISOTime(b)
	if err != nil {
		return time.Time{}, &DecodeError{Part: part, Field: field, Err: ErrBadValue,
			Detail: "bad time " + quoteTrunc(b) + ": " + err.(*DecodeError).Detail}
	}
	return t, nil
}

// timeLimitField reads [hard, soft] (each a number or null), or null.
func timeLimitField(s *scanner, part, field string) (TimeLimit, error) {
	var tl TimeLimit
	switch c := s.peek(); c {
	case 'n':
		if s.null() {
			return tl, nil
		}
		return tl, fieldErr(s.err(), part, field)
	case '[':
	case 0:
		return tl, fieldErr(s.err(), part, field)
	default:
		return tl, typeError(part, field, "[hard, soft] array", c)
	}
	if err := s.open('['); err != nil {
		return tl, fieldErr(err, part, field)
	}
	n := 0
	for first := true; ; first = false {
		done, err := s.elem(first)
		if err != nil {
			return tl, fieldErr(err, part, field)
		}
		if done {
			break
		}
		f, null, err := floatField(s, part, field)
		if err != nil {
			return tl, err
		}
		if f < 0 {
			return tl, &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: "negative time limit"}
		}
		switch n {
		case 0:
			tl.Hard, tl.HasHard = f, !null
		case 1:
			tl.Soft, tl.HasSoft = f, !null
		}
		n++
	}
	if n != 2 {
		return TimeLimit{}, &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: "want [hard, soft]"}
	}
	return tl, nil
}

// quoteTrunc quotes b for an error message, cut to a sane length.
func quoteTrunc(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(appendString(nil, b[:max])) + "..."
	}
	return string(appendString(nil, b))
}

// keyBuf holds an unescaped object key; keys longer than it are compared
// raw (they are never one of ours).
type keyBuf [64]byte

// unescapeKey returns key decoded when it had escapes (and fits kb).
func unescapeKey(kb *keyBuf, key []byte, esc bool) []byte {
	if !esc || len(key) > len(kb) {
		return key
	}
	return appendUnescaped(kb[:0], key)
}
