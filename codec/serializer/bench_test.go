package serializer

import (
	stdjson "encoding/json"
	"testing"
	"time"
)

// benchArgs is a small task args array, boxed once as a caller would hold it.
var benchArgs any = []any{2, 3}

// benchBody is a whole Celery v2 body: [args, kwargs, embed].
var benchBody any = []any{
	[]any{2, 3, "user@example.com"},
	map[string]any{"retries": 3, "tags": []any{"a", "b"}},
	map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil},
}

func BenchmarkJSONAppend(b *testing.B) {
	b.Run("args", func(b *testing.B) {
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = JSON.Append(dst[:0], benchArgs)
		}
	})
	b.Run("args/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stdjson.Marshal(benchArgs)
		}
	})
	// The same args through the encoder with kombu's hooks: what the
	// needsEncodeHooks fast path saves.
	b.Run("args/hooked", func(b *testing.B) {
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = appendJSON(dst[:0], benchArgs, jsonHooked)
		}
	})
	b.Run("body", func(b *testing.B) {
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = JSON.Append(dst[:0], benchBody)
		}
	})
	b.Run("body/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stdjson.Marshal(benchBody)
		}
	})
	withTime := []any{2, time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)}
	b.Run("time", func(b *testing.B) {
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = JSON.Append(dst[:0], withTime)
		}
	})
}

func BenchmarkJSONDecode(b *testing.B) {
	args := []byte(`[2, 3]`)
	body := []byte(`[[2, 3, "user@example.com"], {"retries": 3, "tags": ["a", "b"]}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)
	b.Run("args", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v []any
			JSON.Decode(args, &v)
		}
	})
	b.Run("args/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v []any
			stdjson.Unmarshal(args, &v)
		}
	})
	b.Run("args-typed", func(b *testing.B) {
		var v [2]int
		b.ReportAllocs()
		for b.Loop() {
			JSON.Decode(args, &v)
		}
	})
	b.Run("args-typed/encoding-json", func(b *testing.B) {
		var v [2]int
		b.ReportAllocs()
		for b.Loop() {
			stdjson.Unmarshal(args, &v)
		}
	})
	b.Run("body", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v []any
			JSON.Decode(body, &v)
		}
	})
	b.Run("body/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v []any
			stdjson.Unmarshal(body, &v)
		}
	})
	withTime := []byte(`{"n": 2, "when": "2024-01-02T03:04:05.123456Z"}`)
	b.Run("time-typed", func(b *testing.B) {
		var v struct {
			N    int
			When time.Time
		}
		b.ReportAllocs()
		for b.Loop() {
			JSON.Decode(withTime, &v)
		}
	})
}

// BenchmarkFormats encodes and decodes the same body with each serializer,
// and transcodes it to JSON.
func BenchmarkFormats(b *testing.B) {
	for _, s := range []Serializer{JSON, Msgpack, YAML} {
		enc, err := s.Append(nil, benchBody)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.Name+"/append", func(b *testing.B) {
			dst := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = s.Append(dst[:0], benchBody)
			}
		})
		b.Run(s.Name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v any
				s.Decode(enc, &v)
			}
		})
		b.Run(s.Name+"/tojson", func(b *testing.B) {
			dst := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = s.ToJSON(dst[:0], enc)
			}
		})
	}
}

// BenchmarkAcceptCheckJSON: the worker checks every received message's
// content type against accept_content.
func BenchmarkAcceptCheckJSON(b *testing.B) {
	a, err := NewAccept("json")
	if err != nil {
		b.Fatal(err)
	}
	ct := []byte("application/json")
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Check(ct); err != nil {
			b.Fatal(err)
		}
	}
}
