package serializer

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want Serializer
		ok   bool
	}{
		{"json", JSON, true},
		{"JSON", JSON, true},
		{"msgpack", Msgpack, true},
		{"yaml", YAML, true},
		{"pickle", Pickle, true},
		{"raw", Raw, true},
		{"text", Text, true},
		{"application/json", Serializer{}, false},
		{"", Serializer{}, false},
		{"bson", Serializer{}, false},
	}
	for _, tt := range tests {
		got, ok := ByName(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ByName(%q) = %v, %v; want %v, %v", tt.name, got.Name, ok, tt.want.Name, tt.ok)
		}
	}
}

func TestByContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct   string
		want Serializer
		ok   bool
	}{
		{"application/json", JSON, true},
		{"Application/JSON", JSON, true},
		{"application/x-msgpack", Msgpack, true},
		{"application/x-yaml", YAML, true},
		{"application/x-python-serialize", Pickle, true},
		{"application/data", Raw, true},
		{"application/text", Text, true},
		{"", Raw, true}, // kombu: no content type is application/data
		{"application/json; charset=utf-8", Serializer{}, false},
		{"text/plain", Serializer{}, false},
		{"json", Serializer{}, false},
	}
	for _, tt := range tests {
		got, ok := ByContentType([]byte(tt.ct))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ByContentType(%q) = %v, %v; want %v, %v", tt.ct, got.Name, ok, tt.want.Name, tt.ok)
		}
	}
}

func TestAccept(t *testing.T) {
	t.Parallel()
	msgpackYAML, err := NewAccept("msgpack", "application/x-yaml", "application/x-custom")
	if err != nil {
		t.Fatal(err)
	}
	zero := Accept{}
	tests := []struct {
		name string
		a    Accept
		ct   string
		ok   bool
	}{
		{"default json", DefaultAccept, "application/json", true},
		{"default case", DefaultAccept, "APPLICATION/JSON", true},
		{"default msgpack", DefaultAccept, "application/x-msgpack", false},
		{"default yaml", DefaultAccept, "application/x-yaml", false},
		{"default pickle", DefaultAccept, "application/x-python-serialize", false},
		{"default data", DefaultAccept, "application/data", true},
		{"default text", DefaultAccept, "application/text", true},
		{"default none", DefaultAccept, "", true},
		{"default unknown", DefaultAccept, "text/plain", false},
		{"zero json", zero, "application/json", false},
		{"zero data", zero, "application/data", true},
		{"custom msgpack", msgpackYAML, "application/x-msgpack", true},
		{"custom yaml", msgpackYAML, "application/x-yaml", true},
		{"custom json", msgpackYAML, "application/json", false},
		{"custom other", msgpackYAML, "Application/X-Custom", true},
	}
	for _, tt := range tests {
		err := tt.a.Check([]byte(tt.ct))
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check(%q) = %v, want ok=%v", tt.name, tt.ct, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrContentDisallowed) || !strings.Contains(err.Error(), tt.ct)) {
			t.Errorf("%s: error %q should wrap ErrContentDisallowed and name %q", tt.name, err, tt.ct)
		}
	}

	if a, err := NewAccept("json"); err != nil || a.Check([]byte("application/json")) != nil || a.Check([]byte("application/x-yaml")) == nil {
		t.Errorf(`NewAccept("json") = %v, %v; want DefaultAccept's behaviour`, a, err)
	}
	for _, bad := range []string{"pickle", "application/x-python-serialize"} {
		if _, err := NewAccept("json", bad); !errors.Is(err, ErrContentDisallowed) {
			t.Errorf("NewAccept(%q): %v, want ErrContentDisallowed", bad, err)
		}
	}
	if _, err := NewAccept("bson"); !errors.Is(err, ErrUnknownContentType) {
		t.Errorf(`NewAccept("bson"): %v, want ErrUnknownContentType`, err)
	}
}

func TestPickleRefused(t *testing.T) {
	t.Parallel()
	var v any
	_, err1 := Pickle.Append(nil, 1)
	err2 := Pickle.Decode([]byte("\x80\x04K\x01."), &v)
	_, err3 := Pickle.ToJSON(nil, []byte("\x80\x04K\x01."))
	_, err4 := FromJSON(nil, Pickle, []byte("1"))
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrContentDisallowed) || !strings.Contains(err.Error(), "pickle") {
			t.Errorf("call %d: %v, want ErrContentDisallowed naming pickle", i, err)
		}
	}
}

func TestZeroSerializer(t *testing.T) {
	t.Parallel()
	var s Serializer
	var v any
	_, err1 := s.Append(nil, 1)
	err2 := s.Decode([]byte("1"), &v)
	_, err3 := s.ToJSON(nil, []byte("1"))
	_, err4 := FromJSON(nil, s, []byte("1"))
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrUnknownContentType) {
			t.Errorf("call %d: %v, want ErrUnknownContentType", i, err)
		}
	}
}

func TestRawAndText(t *testing.T) {
	t.Parallel()
	for _, s := range []Serializer{Raw, Text} {
		out, err := s.Append([]byte("<"), "héllo")
		if err != nil || string(out) != "<héllo" {
			t.Errorf("%s Append string: %q, %v", s.Name, out, err)
		}
		out, _ = s.Append(nil, []byte("x"))
		if string(out) != "x" {
			t.Errorf("%s Append []byte: %q", s.Name, out)
		}
		if _, err := s.Append(nil, 1); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s Append int: %v", s.Name, err)
		}
		var b []byte
		var str string
		var a any
		if s.Decode([]byte("héllo"), &b) != nil || string(b) != "héllo" {
			t.Errorf("%s Decode []byte: %q", s.Name, b)
		}
		if s.Decode([]byte("héllo"), &str) != nil || str != "héllo" {
			t.Errorf("%s Decode string: %q", s.Name, str)
		}
		s.Decode([]byte("héllo"), &a)
		want := any([]byte("héllo"))
		if s == Text {
			want = "héllo"
		}
		if !reflect.DeepEqual(a, want) {
			t.Errorf("%s Decode any: %#v", s.Name, a)
		}
		js, err := s.ToJSON(nil, []byte("h\"é"))
		if err != nil || string(js) != `"h\"é"` {
			t.Errorf("%s ToJSON: %s, %v", s.Name, js, err)
		}
		if _, err := s.ToJSON(nil, []byte{0xff}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s ToJSON of invalid UTF-8: %v", s.Name, err)
		}
		back, err := FromJSON(nil, s, []byte(`"h\"\u00e9"`))
		if err != nil || string(back) != `h"é` {
			t.Errorf("%s FromJSON: %q, %v", s.Name, back, err)
		}
	}
	var str string
	if err := Text.Decode([]byte{0xff}, &str); !errors.Is(err, ErrDecode) {
		t.Errorf("Text.Decode of invalid UTF-8: %v", err)
	}
}

func TestJSONKombuTime(t *testing.T) {
	t.Parallel()
	lmt := time.FixedZone("LMT", 3600+15*60+7)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), `"2024-01-02T03:04:05Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC), `"2024-01-02T03:04:05.123456Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 999, time.UTC), `"2024-01-02T03:04:05Z"`}, // below a microsecond
		{time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC), `"2024-01-02T03:04:05.000001Z"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)), `"2024-01-02T03:04:05+01:00"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(5*3600+30*60))), `"2024-01-02T03:04:05-05:30"`},
		{time.Date(1900, 1, 2, 3, 4, 5, 0, lmt), `"1900-01-02T03:04:05+01:15:07"`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("GMT", 0)), `"2024-01-02T03:04:05Z"`},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), `"0001-01-01T00:00:00Z"`},
	}
	for _, tt := range tests {
		got, err := JSON.Append(nil, tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("Append(%v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
		// Nested, through a pointer and in a struct, too.
		p := tt.in
		got, _ = JSON.Append(nil, struct {
			T *time.Time `json:"t"`
			A []any      `json:"a"`
		}{&p, []any{tt.in}})
		if want := `{"t":` + tt.want + `,"a":[` + tt.want + `]}`; string(got) != want {
			t.Errorf("nested: %s, want %s", got, want)
		}
	}
	if _, err := JSON.Append(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("year 10000: %v, want ErrUnsupported", err)
	}
}

func TestJSONBytesRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		[]byte("x"),
		[]any{1, []byte("x")},
		map[string]any{"k": []any{[]byte{}}},
		struct{ B []byte }{[]byte("x")},
	} {
		_, err := JSON.Append(nil, v)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "EncodeError") {
			t.Errorf("Append(%#v) = %v, want ErrUnsupported explaining kombu's EncodeError", v, err)
		}
	}
	// json.RawMessage is a []byte of another type: it is JSON, written as is.
	got, err := JSON.Append(nil, []any{json.RawMessage(`{"a":1}`)})
	if err != nil || string(got) != `[{"a":1}]` {
		t.Errorf("RawMessage: %s, %v", got, err)
	}
}

func TestJSONDecodeTime(t *testing.T) {
	t.Parallel()
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2024-01-02T03:04:05Z"`, utc(2024, 1, 2, 3, 4, 5, 0)},
		{`"2024-01-02T03:04:05.123456Z"`, utc(2024, 1, 2, 3, 4, 5, 123456000)},
		{`"2024-01-02T03:04:05.123456+00:00"`, utc(2024, 1, 2, 3, 4, 5, 123456000)},
		{`"2024-01-02T03:04:05+01:00"`, utc(2024, 1, 2, 2, 4, 5, 0)},
		{`"2024-01-02T03:04:05"`, utc(2024, 1, 2, 3, 4, 5, 0)},
		{`"2024-01-02T03:04:05.5"`, utc(2024, 1, 2, 3, 4, 5, 500000000)},
		{`"2024-01-02 03:04:05+00:00"`, utc(2024, 1, 2, 3, 4, 5, 0)},
		{`"2024-01-02"`, utc(2024, 1, 2, 0, 0, 0, 0)},
		{`{"__type__": "datetime", "__value__": "2024-01-02T03:04:05.000001+00:00"}`, utc(2024, 1, 2, 3, 4, 5, 1000)},
		{`{"__type__": "date", "__value__": "2024-01-02"}`, utc(2024, 1, 2, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		var v struct {
			T time.Time `json:"t"`
		}
		err := JSON.Decode([]byte(`{"t": `+tt.in+`}`), &v)
		if err != nil || !v.T.Equal(tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.in, v.T, err, tt.want)
		}
	}
	for _, bad := range []string{`"03:04:05"`, `"yesterday"`, `12`, `{"__type__": "time", "__value__": "03:04:05"}`, `{"__type__": "datetime"}`, `{"a": 1, "b": 2}`} {
		var v struct{ T time.Time }
		if err := JSON.Decode([]byte(`{"T": `+bad+`}`), &v); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", bad, err)
		}
	}
	// null leaves the value alone, as encoding/json does.
	v := struct{ T time.Time }{utc(2000, 1, 1, 0, 0, 0, 0)}
	if err := JSON.Decode([]byte(`{"T": null}`), &v); err != nil || v.T.Year() != 2000 {
		t.Errorf("null: %v, %v", v.T, err)
	}
}

func TestJSONDecodeBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []byte
	}{
		{`"caf\u00e9"`, []byte("café")},
		{`{"__type__": "bytes", "__value__": "café"}`, []byte("café")},
		{`{"__type__": "base64", "__value__": "AAH/"}`, []byte{0, 1, 255}},
		{`null`, nil},
	}
	for _, tt := range tests {
		var v struct{ B []byte }
		if err := JSON.Decode([]byte(`{"B": `+tt.in+`}`), &v); err != nil || !bytes.Equal(v.B, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.in, v.B, err, tt.want)
		}
	}
	var v struct{ B []byte }
	if err := JSON.Decode([]byte(`{"B": [1, 2]}`), &v); !errors.Is(err, ErrDecode) {
		t.Errorf("array into []byte: %v, want ErrDecode", err)
	}
}

func TestJSONIntegers(t *testing.T) {
	t.Parallel()
	body := []byte(`[9007199254740993, 18446744073709551615, -9223372036854775808]`)
	var exact [3]json.RawMessage
	if err := JSON.Decode(body, &exact); err != nil || string(exact[0]) != "9007199254740993" {
		t.Errorf("RawMessage: %v %v", exact, err)
	}
	var ints []int64
	if err := JSON.Decode([]byte(`[9007199254740993, -9223372036854775808]`), &ints); err != nil || ints[0] != 1<<53+1 || ints[1] != math.MinInt64 {
		t.Errorf("[]int64: %v, %v", ints, err)
	}
	var typed struct {
		A int64
		B uint64
	}
	if err := JSON.Decode([]byte(`{"A": 9007199254740993, "B": 18446744073709551615}`), &typed); err != nil || typed.A != 1<<53+1 || typed.B != math.MaxUint64 {
		t.Errorf("struct: %+v, %v", typed, err)
	}
	// ToJSON and FromJSON keep every integer exact.
	mp, err := FromJSON(nil, Msgpack, body)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Msgpack.ToJSON(nil, mp)
	if err != nil || string(back) != `[9007199254740993,18446744073709551615,-9223372036854775808]` {
		t.Errorf("JSON -> msgpack -> JSON: %s, %v", back, err)
	}
	if _, err := FromJSON(nil, Msgpack, []byte(`[18446744073709551616]`)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("2^64 into msgpack: %v, want ErrUnsupported", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	bad := map[Serializer][]string{
		JSON:    {"", "[1, 2", "[1, 2]]", "{\"a\": }", "NaN", "[1] [2]", strings.Repeat("[", 20000) + strings.Repeat("]", 20000)},
		Msgpack: {"", "\x92\x01", "\x01\x02", "\xc1", "\xdd\xff\xff\xff\xff", "\xa5abc", "\xa1\xff", strings.Repeat("\x91", 20000) + "\x01"},
		YAML:    {"", "[1, 2", "a: b: c", "--- 1\n--- 2\n", "{a: 1, a: 2}", strings.Repeat("[", 1000) + strings.Repeat("]", 1000)},
	}
	for s, inputs := range bad {
		for _, in := range inputs {
			var v any
			if err := s.Decode([]byte(in), &v); !errors.Is(err, ErrDecode) {
				t.Errorf("%s.Decode(%.20q) = %v, want ErrDecode", s.Name, in, err)
			}
			if _, err := s.ToJSON(nil, []byte(in)); !errors.Is(err, ErrDecode) {
				t.Errorf("%s.ToJSON(%.20q) = %v, want ErrDecode", s.Name, in, err)
			}
		}
		var notPtr struct{}
		if err := s.Decode([]byte("1"), notPtr); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s.Decode into a non-pointer: %v", s.Name, err)
		}
	}
}

// TestYAMLBombs guards the YAML decoder against input that costs far more
// than its size: alias expansion and deep nesting.
func TestYAMLBombs(t *testing.T) {
	t.Parallel()
	var laughs strings.Builder
	laughs.WriteString("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for c := 'b'; c <= 'j'; c++ {
		p := string(c - 1)
		laughs.WriteString(string(c) + ": &" + string(c) + " [*" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + "]\n")
	}
	var indent strings.Builder
	for i := range 600 {
		indent.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	for name, in := range map[string]string{
		"billion laughs": laughs.String(),
		"deep flow":      strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		"deep dashes":    strings.Repeat("- ", 100000) + "x",
		"deep indent":    indent.String(),
	} {
		var v any
		if err := YAML.Decode([]byte(in), &v); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
		var typed [][][]string
		if err := YAML.Decode([]byte(in), &typed); !errors.Is(err, ErrDecode) {
			t.Errorf("%s into a typed value: %v, want ErrDecode", name, err)
		}
	}
	// Aliases themselves are fine: PyYAML writes them for shared objects.
	var v map[string][]int
	if err := YAML.Decode([]byte("a: &x [1, 2]\nb: *x\n"), &v); err != nil || len(v["b"]) != 2 {
		t.Errorf("alias: %v, %v", v, err)
	}
}

func TestMsgpackToJSON(t *testing.T) {
	t.Parallel()
	ts := []byte{0xd6, 0xff, 0x65, 0x93, 0x7d, 0x25} // timestamp 32: 2024-01-02T03:04:05Z
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"\x93\x01\xa1a\xc0", `[1,"a",null]`, nil},
		{"\xc4\x03caf", `"caf"`, nil},                           // bin, valid UTF-8
		{"\xc4\x02\x00\xff", "", ErrUnsupported},                // bin, not UTF-8
		{"\x82\x01\xa1a\xc3\xa1b", `{"1":"a","true":"b"}`, nil}, // keys as json.dumps makes them
		{"\x81\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xc0", `{"1.5":null}`, nil},
		{"\xcb\x40\x59\x00\x00\x00\x00\x00\x00", `100.0`, nil},       // stays a float for Python
		{"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", "", ErrUnsupported}, // NaN
		{string(ts), `"2024-01-02T03:04:05Z"`, nil},
		{"\xd4\x05\x00", "", ErrUnsupported},     // an extension that is not a timestamp
		{"\x81\x91\x01\x02", "", ErrUnsupported}, // an array as a key
		{"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", `18446744073709551615`, nil},
		{"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", `-9223372036854775808`, nil},
	}
	for _, tt := range tests {
		got, err := Msgpack.ToJSON([]byte("<"), []byte(tt.in))
		if tt.err != nil {
			if !errors.Is(err, tt.err) || string(got) != "<" {
				t.Errorf("ToJSON(% x) = %q, %v; want %v and dst unchanged", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != "<"+tt.want {
			t.Errorf("ToJSON(% x) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// TestYAML11Plain reads plain scalars as PyYAML (YAML 1.1) does where it
// matters for bodies PyYAML wrote: strings it leaves unquoted stay strings
// (0o17 and 1e3 are numbers in YAML 1.2). Not covered: yes/no/on/off and
// 12:30, which YAML 1.1 reads as bool and int but safe_dump never writes
// for Python values (it writes true and 750).
func TestYAML11Plain(t *testing.T) {
	t.Parallel()
	in := "[0o17, 1e3, 0x1F, 017, 1_000, 1.5, 1.0e+21, .inf, null, ~, true, !!str 12, \"0o17\"]"
	want := []any{"0o17", "1e3", int64(31), int64(15), int64(1000), 1.5, 1e21, math.Inf(1), nil, nil, true, "12", "0o17"}
	var got any
	if err := YAML.Decode([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, any(want)) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

// TestJSONFloatsStayFloats: Python's json.dumps writes 100.0 for a float,
// and Python reads 100 as an int; so do we.
func TestJSONFloatsStayFloats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
	}{
		{[]any{100.0, 1.5, math.Copysign(0, -1), 1e20, 1e21, 1e-7, float32(0.1), float32(3)}, `[100.0,1.5,-0.0,1e+20,1e+21,1e-07,0.1,3.0]`},
		{struct{ F float64 }{2}, `{"F":2.0}`},
		{map[string]float64{"x": 7}, `{"x":7.0}`},
		{[]any{1, 2.5}, `[1,2.5]`}, // no integral float: the fast path
	}
	for _, tt := range tests {
		got, err := JSON.Append(nil, tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("Append(%v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := JSON.Append(nil, []any{math.NaN()}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NaN: %v, want ErrUnsupported", err)
	}
}

// TestMsgpackStringKeys: Python's msgpack refuses map keys other than str
// and bytes (strict_map_key), so a body with one is never written.
func TestMsgpackStringKeys(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		map[int]string{1: "a"},
		[]any{map[string]any{"ok": map[bool]int{true: 1}}},
		struct{ M map[float64]int }{map[float64]int{1.5: 1}},
	} {
		if _, err := Msgpack.Append(nil, v); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "strict_map_key") {
			t.Errorf("Append(%#v) = %v, want ErrUnsupported naming strict_map_key", v, err)
		}
	}
	if _, err := Msgpack.Append(nil, map[string]any{"a": map[string]int{"b": 1}}); err != nil {
		t.Errorf("string keys: %v", err)
	}
}
