package events

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// An event is a JSON object with Celery's field order: hostname,
// utcoffset, pid, clock, the type's own fields, timestamp, type
// (celery-wire.md §7.2). The append functions below write one into a
// caller-owned buffer without reflection.

// appendHead opens an event: `{"hostname": ..., "utcoffset": ..., "pid":
// ..., "clock": ...`.
func (d *Dispatcher) appendHead(dst []byte, clock int64) []byte {
	dst = append(dst, `{"hostname": `...)
	dst = append(dst, d.hostJSON...)
	dst = append(dst, `, "utcoffset": `...)
	dst = strconv.AppendInt(dst, int64(d.utcoffset), 10)
	dst = append(dst, `, "pid": `...)
	dst = strconv.AppendInt(dst, int64(d.pid), 10)
	dst = append(dst, `, "clock": `...)
	return strconv.AppendInt(dst, clock, 10)
}

// appendTail closes an event with its timestamp and type.
func appendTail(dst []byte, ts time.Time, typ string) []byte {
	dst = append(dst, `, "timestamp": `...)
	dst = appendTimestamp(dst, ts)
	dst = append(dst, `, "type": "`...)
	dst = append(dst, typ...)
	return append(dst, `"}`...)
}

// appendTimestamp writes t as Unix seconds with microseconds, a float as
// Python's time.time() gives.
func appendTimestamp(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	dst = strconv.AppendInt(dst, us/1e6, 10)
	dst = append(dst, '.')
	frac := us % 1e6
	if frac < 0 {
		frac = -frac
	}
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 6
	for end > 1 && b[end-1] == '0' {
		end--
	}
	return append(dst, b[:end]...)
}

func appendKey(dst []byte, k string) []byte {
	dst = append(dst, ", \""...)
	dst = append(dst, k...)
	return append(dst, "\": "...)
}

func appendStr(dst []byte, k, v string) []byte {
	return control.AppendString(appendKey(dst, k), v)
}

func appendBytesOrNull(dst []byte, k string, v []byte) []byte {
	dst = appendKey(dst, k)
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	return appendJSONBytes(dst, v)
}

func appendInt(dst []byte, k string, v int64) []byte {
	return strconv.AppendInt(appendKey(dst, k), v, 10)
}

func appendBool(dst []byte, k string, v bool) []byte {
	return strconv.AppendBool(appendKey(dst, k), v)
}

func appendTimeOrNull(dst []byte, k string, t time.Time) []byte {
	dst = appendKey(dst, k)
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = codec.AppendISOTime(dst, t)
	return append(dst, '"')
}

// appendJSONBytes writes b (text, possibly not UTF-8) as a JSON string
// without converting it to a string first.
func appendJSONBytes(dst, b []byte) []byte {
	dst = append(dst, '"')
	for len(b) > 0 {
		// Copy the run of bytes that need no escaping at once.
		i := 0
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' && b[i] < utf8.RuneSelf {
			i++
		}
		dst = append(dst, b[:i]...)
		if b = b[i:]; len(b) == 0 {
			break
		}
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		default:
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendPyStr appends Python's repr() of the str s: single quotes unless
// s holds a single quote and no double quote, backslash escapes for the
// quote, backslash and control characters.
func appendPyStr(dst []byte, s string) []byte {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	dst = append(dst, q)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == q || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, q)
}

// excRepr renders a task error as Python's repr of the exception
// (ValueError('boom')) and its traceback text.
func excRepr(err error) (repr, traceback string) {
	typ, _, args, tb := engine.Exception(err)
	b := append([]byte(typ), '(')
	for i, a := range args {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyStr(b, a)
	}
	b = append(b, ')')
	if tb == "" {
		tb = typ + ": " + strings.Join(args, ", ")
	}
	return string(b), tb
}

// utcoffset is Celery's utcoffset(): hours west of UTC, floor-divided
// (time.timezone // 3600), so UTC+1 is -1.
func utcoffset(t time.Time) int {
	_, off := t.Zone()
	return int(math.Floor(float64(-off) / 3600))
}

// sysName is Python's platform.system() for this OS.
func sysName(goos string) string {
	switch goos {
	case "linux":
		return "Linux"
	case "darwin":
		return "Darwin"
	case "windows":
		return "Windows"
	case "freebsd":
		return "FreeBSD"
	}
	if goos == "" {
		return ""
	}
	return strings.ToUpper(goos[:1]) + goos[1:]
}
