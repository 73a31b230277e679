package serializer

import (
	"errors"
	"testing"
	"time"
)

// fuzzTarget is a typed value to decode fuzz input into, exercising the
// time.Time and []byte hooks and struct matching.
type fuzzTarget struct {
	Args   []any          `json:"args"`
	Kwargs map[string]any `json:"kwargs"`
	When   time.Time      `json:"when"`
	Data   []byte         `json:"data"`
	N      int64          `json:"n"`
	Items  []fuzzTarget   `json:"items"`
}

// fuzzSerializer checks, for any input, that Decode (into `any` and into a
// struct) and ToJSON return a value or a typed error and never panic, and
// that ToJSON's output is JSON that FromJSON can carry back.
func fuzzSerializer(f *testing.F, s Serializer, seeds ...string) {
	for _, seed := range seeds {
		f.Add([]byte(seed))
	}
	for _, file := range []string{"kombu.json", "kombu.msgpack", "kombu.yaml"} {
		f.Add(readTestdata(f, file))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var v any
		if err := s.Decode(in, &v); err != nil && !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Decode into any: untyped error %v", err)
		}
		var typed fuzzTarget
		if err := s.Decode(in, &typed); err != nil && !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Decode into a struct: untyped error %v", err)
		}
		js, err := s.ToJSON([]byte("<"), in)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ToJSON: untyped error %v", err)
			}
			if string(js) != "<" {
				t.Fatalf("ToJSON changed dst on error")
			}
			return
		}
		js = js[1:]
		if !validJSON(js) {
			t.Fatalf("ToJSON wrote invalid JSON %q", js)
		}
		if _, err := FromJSON(nil, s, js); err != nil && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("FromJSON of ToJSON's output %q: %v", js, err)
		}
	})
}

func FuzzJSON(f *testing.F) {
	fuzzSerializer(f, JSON,
		`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`,
		`{"when": "2024-01-02T03:04:05Z", "data": {"__type__": "base64", "__value__": "AAH/"}, "n": 9007199254740993}`,
		`{"when": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"}, "data": "x"}`)
}

func FuzzMsgpack(f *testing.F) {
	fuzzSerializer(f, Msgpack,
		"\x93\x92\x02\x03\x80\x84\xa9callbacks\xc0\xa8errbacks\xc0\xa5chain\xc0\xa5chord\xc0",
		"\x82\xa4when\xd6\xff\x65\x93\x7d\x25\xa4data\xc4\x03\x00\x01\xff",
		"\x81\x01\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00")
}

func FuzzYAML(f *testing.F) {
	fuzzSerializer(f, YAML,
		"[[2, 3], {}, {\"callbacks\": null, \"chain\": null}]\n",
		"when: 2024-01-02 03:04:05+00:00\ndata: !!binary AAH/\nn: 0o17\n",
		"a: &a [1, 2]\nb: [*a, *a]\n",
		"- - 1\n  - \"\\L\\x7F\"\n- {1: x, null: y}\n")
}
