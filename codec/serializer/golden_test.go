package serializer

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// goldenArgs is the first element of every testdata/kombu.* body (see
// testdata/gen.py), as the generic decoders give it.
var goldenArgs = []any{int64(2), int64(-3), int64(1<<53 + 1), uint64(1<<63 + 5), 1.5, 1e21, "h\u00e9llo \u2603 \U0001F600", "", nil, true, false}

var goldenTricky = []any{"yes", "no", "null", "~", "1e3", ".inf", "=", "1:20", "0x1F", "2024-01-02", "- x", "a: b", "#c",
	"line1\nline2", "\x00\x07\x7f", "\u2028", " lead", "trail ", "\"quoted\"", "back\\slash"}

var goldenEmbed = map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}

var goldenNested = map[string]any{"list": []any{[]any{}, map[string]any{}}, "k": "v"}

// TestGoldenKombu decodes the bodies kombu.serialization.dumps wrote and
// checks every field.
func TestGoldenKombu(t *testing.T) {
	t.Parallel()
	common := map[string]any{
		"tuple":  []any{int64(1), "two"},
		"nested": goldenNested,
		"tricky": goldenTricky,
	}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		s    Serializer
		file string
		want []any
	}{
		{JSON, "kombu.json", []any{goldenArgs, with(map[string]any{
			// kombu 5.2: datetimes as ISO strings with Z, date as midnight,
			// time, UUID and Decimal as strings.
			"when": "2024-01-02T03:04:05.123456Z", "naive": "2024-01-02T03:04:05", "tz": "2024-01-02T03:04:05-05:30",
			"date": "2024-01-02T00:00:00", "time": "03:04:05.000006",
			"uuid": "00000000-0000-0000-0000-000000000007", "decimal": "1.10",
		}), goldenEmbed}},
		{Msgpack, "kombu.msgpack", []any{goldenArgs, with(map[string]any{
			"bytes": []byte{0, 1, 0xff}, "text_bytes": []byte("café"),
		}), goldenEmbed}},
		{YAML, "kombu.yaml", []any{goldenArgs, with(map[string]any{
			// PyYAML's timestamps stay strings in a generic tree.
			"when": "2024-01-02 03:04:05.123456+00:00", "naive": "2024-01-02 03:04:05", "tz": "2024-01-02 03:04:05-05:30",
			"bytes": []byte{0, 1, 0xff}, "text_bytes": []byte("café"),
		}), goldenEmbed}},
	}
	for _, tt := range tests {
		data := readTestdata(t, tt.file)
		var got any
		if tt.s == JSON {
			// Decode into `any` makes numbers float64; compare the exact
			// tree that ToJSON keeps.
			js, err := tt.s.ToJSON(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if got, err = jsonToTree(js); err != nil {
				t.Fatal(err)
			}
		} else if err := tt.s.Decode(data, &got); err != nil {
			t.Fatalf("%s: %v", tt.s.Name, err)
		}
		want := any(tt.want)
		if !reflect.DeepEqual(got, want) {
			diffTrees(t, tt.s.Name, got, want)
		}
	}
}

// TestGoldenKombuTyped decodes the kwargs of the same bodies into a Go
// struct: kombu's and PyYAML's time formats into time.Time, bin and !!binary
// into []byte, and the strings YAML 1.1 would misread.
func TestGoldenKombuTyped(t *testing.T) {
	t.Parallel()
	type kwargs struct {
		When   time.Time `json:"when"`
		Naive  time.Time `json:"naive"`
		TZ     time.Time `json:"tz"`
		Date   time.Time `json:"date"`
		Tuple  []any     `json:"tuple"`
		Tricky []string  `json:"tricky"`
		Bytes  []byte    `json:"bytes"`
		Text   []byte    `json:"text_bytes"`
	}
	for _, tt := range []struct {
		s    Serializer
		file string
	}{{JSON, "kombu.json"}, {Msgpack, "kombu.msgpack"}, {YAML, "kombu.yaml"}} {
		var body []any
		if err := tt.s.Decode(readTestdata(t, tt.file), &body); err != nil {
			t.Fatal(err)
		}
		// The kwargs element, re-encoded alone (generic trees re-encode
		// without loss), decoded into the struct.
		one, err := tt.s.Append(nil, body[1])
		if err != nil {
			t.Fatalf("%s: %v", tt.s.Name, err)
		}
		var k kwargs
		if err := tt.s.Decode(one, &k); err != nil {
			t.Fatalf("%s: %v", tt.s.Name, err)
		}
		if !reflect.DeepEqual(anySlice(k.Tricky), goldenTricky) {
			t.Errorf("%s: tricky = %q", tt.s.Name, k.Tricky)
		}
		if len(k.Tuple) != 2 || k.Tuple[1] != "two" {
			t.Errorf("%s: tuple = %#v", tt.s.Name, k.Tuple)
		}
		if tt.s != Msgpack { // kombu's msgpack cannot carry datetimes
			checks := []struct {
				name      string
				got, want time.Time
			}{
				{"when", k.When, time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)},
				{"naive (UTC)", k.Naive, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
				{"tz", k.TZ, time.Date(2024, 1, 2, 8, 34, 5, 0, time.UTC)},
			}
			for _, c := range checks {
				if !c.got.Equal(c.want) {
					t.Errorf("%s: %s = %v, want %v", tt.s.Name, c.name, c.got, c.want)
				}
			}
		}
		if tt.s == JSON && !k.Date.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("json: date = %v", k.Date)
		}
		if tt.s != JSON && (string(k.Bytes) != "\x00\x01\xff" || string(k.Text) != "café") {
			t.Errorf("%s: bytes = %q, %q", tt.s.Name, k.Bytes, k.Text)
		}
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// diffTrees reports where two generic trees differ.
func diffTrees(t *testing.T, path string, got, want any) {
	t.Helper()
	switch w := want.(type) {
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: got %#v, want %#v", path, got, want)
			return
		}
		for i := range w {
			diffTrees(t, fmt.Sprintf("%s[%d]", path, i), g[i], w[i])
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: got %#v, want %#v", path, got, want)
			return
		}
		for k := range w {
			diffTrees(t, path+"."+k, g[k], w[k])
		}
	default:
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", path, got, want)
		}
	}
}
