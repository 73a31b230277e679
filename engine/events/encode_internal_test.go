package events

import (
	"errors"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
)

func TestAppendPyStrAsPythonRepr(t *testing.T) {
	t.Parallel()
	// Expected values are Python 3's repr() of the same strings.
	for _, tc := range []struct{ in, want string }{
		{"abc", `'abc'`},
		{"it's", `"it's"`},
		{`it's "x"`, `'it\'s "x"'`},
		{`say "hi"`, `'say "hi"'`},
		{"a\\b", `'a\\b'`},
		{"l1\nl2\tx\r", `'l1\nl2\tx\r'`},
		{"\x00\x1f\x7f", `'\x00\x1f\x7f'`},
		{"héllo", `'héllo'`},
		{"bad\xff", `'bad\xff'`},
	} {
		if got := string(appendPyStr(nil, tc.in)); got != tc.want {
			t.Errorf("appendPyStr(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestExcRepr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err      error
		repr, tb string
	}{
		{&engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{"boom"}}, "ValueError('boom')", "ValueError: boom"},
		{&engine.TaskError{Type: "KeyError", Args: []any{"a", 2}, Traceback: "Traceback..."}, "KeyError('a', '2')", "Traceback..."},
		{&engine.TaskError{Type: "StopIteration"}, "StopIteration()", "StopIteration: "},
		{errors.New("plain"), "Exception('plain')", "Exception: plain"},
	} {
		repr, tb := excRepr(tc.err)
		if repr != tc.repr || tb != tc.tb {
			t.Errorf("excRepr(%v) = %q, %q; want %q, %q", tc.err, repr, tb, tc.repr, tc.tb)
		}
	}
}

func TestUTCOffsetIsHoursWest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		offset int // seconds east
		want   int
	}{{0, 0}, {3600, -1}, {-5 * 3600, 5}, {19800, -6}, {-12600, 3}} {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("z", tc.offset))
		if got := utcoffset(at); got != tc.want {
			t.Errorf("utcoffset(UTC%+d s) = %d, want %d", tc.offset, got, tc.want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1795486489, 486024600), "1795486489.486024"},
		{time.Unix(1795486489, 0), "1795486489.0"},
		{time.Unix(1795486489, 500000000), "1795486489.5"},
	} {
		if got := string(appendTimestamp(nil, tc.t)); got != tc.want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestSysName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"linux": "Linux", "darwin": "Darwin", "windows": "Windows", "plan9": "Plan9", "": ""} {
		if got := sysName(in); got != want {
			t.Errorf("sysName(%q) = %q", in, got)
		}
	}
}

func TestAppendJSONBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain (1, 2)", `"plain (1, 2)"`},
		{`{'a': "b\c"}`, `"{'a': \"b\\c\"}"`},
		{"x\ny\tz\r\x01", `"x\ny\tz\r\u0001"`},
		{"é€ok", `"é€ok"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"", `""`},
	} {
		if got := string(appendJSONBytes(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendJSONBytes(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
