package engine

// reprMax is Celery's argsrepr_maxsize / kwargsrepr_maxsize.
const reprMax = 1024

// appendPyRepr appends the Python repr() of the JSON value js, as Celery
// puts it in the argsrepr/kwargsrepr headers: a JSON array as a tuple when
// tuple is set ("(2, 3)", "(2,)"), null/true/false as None/True/False,
// strings single-quoted. The output is cut at 1024 bytes as Celery's
// saferepr does. Malformed input gives a best-effort repr, never a panic.
func appendPyRepr(dst, js []byte, tuple bool) []byte {
	start := len(dst)
	r := reprWriter{src: js, dst: dst, limit: start + reprMax}
	r.skipSpace()
	if tuple && r.peek() == '[' {
		r.pos++
		r.put('(')
		n := r.elements(']')
		if n == 1 {
			r.put(',')
		}
		r.put(')')
	} else {
		r.value(0)
	}
	if len(r.dst) > r.limit {
		r.dst = r.dst[:r.limit]
	}
	return r.dst
}

type reprWriter struct {
	src   []byte
	pos   int
	dst   []byte
	limit int
}

func (r *reprWriter) peek() byte {
	if r.pos < len(r.src) {
		return r.src[r.pos]
	}
	return 0
}

func (r *reprWriter) put(c byte) {
	if len(r.dst) <= r.limit {
		r.dst = append(r.dst, c)
	}
}

func (r *reprWriter) puts(s string) {
	if len(r.dst) <= r.limit {
		r.dst = append(r.dst, s...)
	}
}

func (r *reprWriter) skipSpace() {
	for r.pos < len(r.src) {
		switch r.src[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// elements writes the comma-separated values up to end and returns how
// many there were.
func (r *reprWriter) elements(end byte) int {
	n := 0
	for {
		r.skipSpace()
		c := r.peek()
		if c == end {
			r.pos++
			return n
		}
		if c == 0 || len(r.dst) > r.limit {
			return n
		}
		if c == ',' {
			r.pos++
			continue
		}
		if n > 0 {
			r.puts(", ")
		}
		before := r.pos
		if end == '}' {
			r.value(1)
			r.skipSpace()
			if r.peek() == ':' {
				r.pos++
				r.puts(": ")
			}
			r.skipSpace()
		}
		r.value(1)
		if r.pos == before { // no progress on garbage: stop
			return n
		}
		n++
	}
}

func (r *reprWriter) value(depth int) {
	r.skipSpace()
	if depth > 64 {
		r.pos = len(r.src)
		r.puts("...")
		return
	}
	switch c := r.peek(); {
	case c == '[':
		r.pos++
		r.put('[')
		r.elements(']')
		r.put(']')
	case c == '{':
		r.pos++
		r.put('{')
		r.elements('}')
		r.put('}')
	case c == '"':
		r.str()
	case c == 't' || c == 'f' || c == 'n':
		switch c {
		case 't':
			r.puts("True")
		case 'f':
			r.puts("False")
		default:
			r.puts("None")
		}
		for r.pos < len(r.src) && r.src[r.pos] >= 'a' && r.src[r.pos] <= 'z' {
			r.pos++
		}
	default:
		for r.pos < len(r.src) {
			c := r.src[r.pos]
			if c == ',' || c == ']' || c == '}' || c == ':' || c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				break
			}
			r.put(c)
			r.pos++
		}
	}
}

// str converts a JSON string to a Python string literal.
func (r *reprWriter) str() {
	r.pos++ // opening quote
	// Python prefers single quotes; it switches to double quotes when the
	// text has a single quote and no double quote.
	quote := byte('\'')
	hasSingle, hasDouble := false, false
	for i := r.pos; i < len(r.src) && r.src[i] != '"'; i++ {
		switch r.src[i] {
		case '\'':
			hasSingle = true
		case '\\':
			if i+1 < len(r.src) && r.src[i+1] == '"' {
				hasDouble = true
			}
			i++
		}
	}
	if hasSingle && !hasDouble {
		quote = '"'
	}
	r.put(quote)
	for r.pos < len(r.src) {
		c := r.src[r.pos]
		r.pos++
		switch {
		case c == '"':
			r.put(quote)
			return
		case c == '\\' && r.pos < len(r.src):
			e := r.src[r.pos]
			r.pos++
			switch e {
			case 'n':
				r.puts(`\n`)
			case 't':
				r.puts(`\t`)
			case 'r':
				r.puts(`\r`)
			case '\\':
				r.puts(`\\`)
			case '"':
				r.put('"')
			case '/':
				r.put('/')
			case 'b':
				r.puts(`\x08`)
			case 'f':
				r.puts(`\x0c`)
			case 'u':
				// Keep the escape: printable code points are rare in args
				// and the repr is informational.
				r.puts(`\u`)
			default:
				r.put(e)
			}
		case c == quote:
			r.put('\\')
			r.put(c)
		default:
			r.put(c)
		}
	}
	r.put(quote)
}
