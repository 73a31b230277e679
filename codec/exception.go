package codec

// AppendExceptionJSON appends an exception as Celery's JSON result
// serializers store it (celery-wire.md §5.3):
//
//	{"exc_type": "ValueError", "exc_message": ["kaboom"], "exc_module": "builtins"}
//
// exc_message is the list of the exception's args, here all strings; use
// AppendExceptionJSONRaw for other argument types.
func AppendExceptionJSON(dst []byte, excType, excModule string, args ...string) []byte {
	dst = append(dst, `{"exc_type": `...)
	dst = appendString(dst, excType)
	dst = append(dst, `, "exc_message": [`...)
	for i, a := range args {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendString(dst, a)
	}
	dst = append(dst, `], "exc_module": `...)
	dst = appendString(dst, excModule)
	return append(dst, '}')
}

// AppendExceptionJSONRaw is AppendExceptionJSON with exc_message given as
// raw JSON array text (e.g. "[1.5]" for TimeLimitExceeded); empty means [].
func AppendExceptionJSONRaw(dst []byte, excType, excModule string, message []byte) []byte {
	dst = append(dst, `{"exc_type": `...)
	dst = appendString(dst, excType)
	dst = append(dst, `, "exc_message": `...)
	dst = appendRawOr(dst, message, "[]")
	dst = append(dst, `, "exc_module": `...)
	dst = appendString(dst, excModule)
	return append(dst, '}')
}

// ExceptionInfo is a decoded exception record. Type and Module are views
// into the decoded buffer (copies when they had JSON escapes); Message is
// the raw JSON exc_message value (normally an array of the exception's
// args; Celery also accepts a plain string).
type ExceptionInfo struct {
	Type    []byte
	Module  []byte
	Message []byte
}

// DecodeException reads raw (a result value) as an exception record. ok is
// false unless raw is a JSON object with a string "exc_type"; exc_module
// may be absent (Celery then looks the type up in builtins).
func DecodeException(raw []byte) (ExceptionInfo, bool) {
	var e ExceptionInfo
	s := scanner{src: raw}
	if s.peek() != '{' || s.open('{') != nil {
		return e, false
	}
	hasType := false
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return ExceptionInfo{}, false
		}
		if done {
			break
		}
		switch string(unescapeKey(&kb, key, esc)) {
		case "exc_type":
			e.Type, err = ownedStr(&s)
			hasType = err == nil && e.Type != nil
		case "exc_module":
			e.Module, err = ownedStr(&s)
		case "exc_message":
			e.Message, err = s.skip()
		default:
			_, err = s.skip()
		}
		if err != nil {
			return ExceptionInfo{}, false
		}
	}
	if s.end() != nil || !hasType {
		return ExceptionInfo{}, false
	}
	return e, true
}

// ownedStr reads a string (or null) and returns a view, or a fresh copy
// when it had escapes.
func ownedStr(s *scanner) ([]byte, error) {
	var scratch []byte
	return scratchStr(&scratch, s, "", "")
}
