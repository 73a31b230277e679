package codec

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// scanner is a small pull parser over one JSON text. It never allocates on
// success: strings and values come back as views into src (the caller
// unescapes into storage of its own when a string has escapes). Errors are
// *DecodeError values without Part, which the caller fills in.
//
// It accepts what Python's json module writes, including the NaN,
// Infinity and -Infinity number tokens, and rejects everything else.
type scanner struct {
	src   []byte
	pos   int
	depth int
}

func (s *scanner) ws() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.src) {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) errAt(pos int) error {
	if pos >= len(s.src) {
		return &DecodeError{Err: ErrTruncated}
	}
	return &DecodeError{Err: ErrSyntax, Detail: "invalid character " + strconv.QuoteRune(rune(s.src[pos])) +
		" at offset " + strconv.Itoa(pos)}
}

func (s *scanner) err() error { return s.errAt(s.pos) }

// consume skips whitespace and then requires byte c.
func (s *scanner) consume(c byte) error {
	if s.peek() != c {
		return s.err()
	}
	s.pos++
	return nil
}

// end requires that only whitespace remains.
func (s *scanner) end() error {
	s.ws()
	if s.pos != len(s.src) {
		return s.err()
	}
	return nil
}

// open consumes '{' or '[' and counts the nesting depth.
func (s *scanner) open(c byte) error {
	if err := s.consume(c); err != nil {
		return err
	}
	s.depth++
	if s.depth > MaxDepth {
		return &DecodeError{Err: ErrTooDeep}
	}
	return nil
}

// member advances to the next member of the object being read: it returns
// the raw key (between the quotes; esc reports backslashes in it) with the
// scanner positioned at the value, or done=true after the closing brace.
// first is true for the first call after open('{').
func (s *scanner) member(first bool) (key []byte, esc, done bool, err error) {
	c := s.peek()
	if c == '}' {
		s.pos++
		s.depth--
		return nil, false, true, nil
	}
	if !first {
		if c != ',' {
			return nil, false, false, s.err()
		}
		s.pos++
		c = s.peek()
	}
	if c != '"' {
		return nil, false, false, s.err()
	}
	key, esc, err = s.str()
	if err != nil {
		return nil, false, false, err
	}
	if err = s.consume(':'); err != nil {
		return nil, false, false, err
	}
	s.ws()
	return key, esc, false, nil
}

// elem advances to the next element of the array being read, or returns
// done=true after the closing bracket.
func (s *scanner) elem(first bool) (done bool, err error) {
	c := s.peek()
	if c == ']' {
		s.pos++
		s.depth--
		return true, nil
	}
	if !first {
		if c != ',' {
			return false, s.err()
		}
		s.pos++
		s.ws()
	}
	return false, nil
}

// str reads a string starting at the opening quote and returns its raw
// contents (escapes not decoded) and whether it contains escapes.
func (s *scanner) str() (raw []byte, esc bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.err()
	}
	start := s.pos + 1
	i := start
	src := s.src
	for i < len(src) {
		// Skip ordinary bytes eight at a time, then one at a time.
		for i+8 <= len(src) && !strSpecial[src[i]] && !strSpecial[src[i+1]] && !strSpecial[src[i+2]] &&
			!strSpecial[src[i+3]] && !strSpecial[src[i+4]] && !strSpecial[src[i+5]] && !strSpecial[src[i+6]] && !strSpecial[src[i+7]] {
			i += 8
		}
		for i < len(src) && !strSpecial[src[i]] {
			i++
		}
		if i >= len(src) {
			break
		}
		switch c := src[i]; {
		case c == '"':
			s.pos = i + 1
			return src[start:i:i], esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(src) {
				return nil, false, s.errAt(len(src))
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) {
					return nil, false, s.errAt(len(src))
				}
				for j := i + 2; j < i+6; j++ {
					if unhex(src[j]) < 0 {
						return nil, false, s.errAt(j)
					}
				}
				i += 6
			default:
				return nil, false, s.errAt(i + 1)
			}
		default: // a control character
			return nil, false, s.errAt(i)
		}
	}
	return nil, false, s.errAt(len(src))
}

// strSpecial marks the bytes that end the fast scan of a string: the
// quote, the backslash and the control characters JSON forbids.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// number reads a JSON number (or NaN/Infinity/-Infinity as Python writes
// them) and returns its text.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.pos
	src := s.src
	i := start
	if i < len(src) && src[i] == '-' {
		i++
	}
	if rest := src[i:]; len(rest) >= 8 && string(rest[:8]) == "Infinity" {
		s.pos = i + 8
		return src[start:s.pos:s.pos], nil
	}
	if i == start {
		if rest := src[i:]; len(rest) >= 3 && string(rest[:3]) == "NaN" {
			s.pos = i + 3
			return src[start:s.pos:s.pos], nil
		}
	}
	switch {
	case i >= len(src):
		return nil, s.errAt(i)
	case src[i] == '0':
		i++
	case src[i] >= '1' && src[i] <= '9':
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	default:
		return nil, s.errAt(i)
	}
	if i < len(src) && src[i] == '.' {
		i++
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return nil, s.errAt(i)
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return nil, s.errAt(i)
		}
	}
	s.pos = i
	return src[start:i:i], nil
}

// literal consumes the keyword lit ("true", "false", "null").
func (s *scanner) literal(lit string) error {
	s.ws()
	if len(s.src)-s.pos < len(lit) {
		if string(s.src[s.pos:]) == lit[:len(s.src)-s.pos] {
			return s.errAt(len(s.src))
		}
		return s.err()
	}
	if string(s.src[s.pos:s.pos+len(lit)]) != lit {
		return s.err()
	}
	s.pos += len(lit)
	return nil
}

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && len(s.src)-s.pos >= 4 && string(s.src[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// boolean reads true or false.
func (s *scanner) boolean() (bool, error) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, s.err()
}

// skip reads any value and returns its raw text.
func (s *scanner) skip() ([]byte, error) {
	c := s.peek()
	start := s.pos
	var err error
	switch c {
	case '"':
		_, _, err = s.str()
	case '{':
		if err = s.open('{'); err != nil {
			return nil, err
		}
		for first := true; ; first = false {
			var done bool
			if _, _, done, err = s.member(first); err != nil || done {
				break
			}
			if _, err = s.skip(); err != nil {
				break
			}
		}
	case '[':
		if err = s.open('['); err != nil {
			return nil, err
		}
		for first := true; ; first = false {
			var done bool
			if done, err = s.elem(first); err != nil || done {
				break
			}
			if _, err = s.skip(); err != nil {
				break
			}
		}
	case 't':
		err = s.literal("true")
	case 'f':
		err = s.literal("false")
	case 'n':
		err = s.literal("null")
	default:
		_, err = s.number()
	}
	if err != nil {
		return nil, err
	}
	return s.src[start:s.pos:s.pos], nil
}

// validJSON reports whether b is exactly one JSON value (with optional
// surrounding whitespace) within MaxDepth.
func validJSON(b []byte) error {
	s := scanner{src: b}
	if _, err := s.skip(); err != nil {
		return err
	}
	return s.end()
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func hex4(b []byte) rune {
	return rune(unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3]))
}

// appendUnescaped appends the decoded form of raw, the contents of a JSON
// string already validated by scanner.str. Lone surrogates become U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if d := utf16.DecodeRune(r, hex4(raw[i+2:])); d != utf8.RuneError {
						r2 = d
						i += 6
					}
				}
				r = r2
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}

// parseInt reads a JSON number that must be an integer (an integral float
// such as 2.0 is accepted, as Python would use it). It does not allocate
// for well-formed numbers.
func parseInt(raw []byte) (int64, bool) {
	b := raw
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for i, c := range b {
		if c < '0' || c > '9' {
			return integralFloat(raw)
		}
		if i == 18 {
			v, err := strconv.ParseInt(unsafeconv.String(raw), 10, 64)
			return v, err == nil
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// integralFloat reads a number with a fraction or exponent that must
// still be a whole number.
func integralFloat(raw []byte) (int64, bool) {
	f, err := strconv.ParseFloat(unsafeconv.String(raw), 64)
	if err != nil || f != math.Trunc(f) || f < -9.2e18 || f > 9.2e18 {
		return 0, false
	}
	return int64(f), true
}

// parseFloat reads a JSON number (or NaN/Infinity) as float64.
func parseFloat(raw []byte) (float64, bool) {
	if len(raw) < 16 {
		digits := true
		for i, c := range raw {
			if (c < '0' || c > '9') && !(i == 0 && c == '-') {
				digits = false
				break
			}
		}
		if digits {
			n, ok := parseInt(raw)
			return float64(n), ok
		}
	}
	f, err := strconv.ParseFloat(unsafeconv.String(raw), 64)
	return f, err == nil
}
