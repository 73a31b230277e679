package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// Fuzz targets for every decoder. Seeds: the golden vectors (added here)
// and the hand-made bad inputs under testdata/fuzz/<target>/. Each target
// checks more than "no panic": whatever decodes must re-encode to a
// fixed point (encode(decode(encode(decode(x)))) == encode(decode(x))).

func addGolden(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata/golden", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files for %s", pattern)
	}
	for _, file := range files {
		f.Add(goldenFile(f, file[len("testdata/golden/"):]))
	}
}

func FuzzDecodeRedisEnvelope(f *testing.F) {
	addGolden(f, "redis/*.json")
	f.Fuzz(func(t *testing.T, src []byte) {
		m := AcquireMessage()
		defer ReleaseMessage(m)
		if DecodeRedisEnvelope(src, m) != nil {
			return
		}
		_, _ = m.BodyJSON(1 << 20)
		enc := AppendRedisEnvelope(nil, m)
		var m2 Message
		if err := DecodeRedisEnvelope(enc, &m2); err != nil {
			t.Fatalf("re-decoding our own envelope: %v\n%s", err, enc)
		}
		if m2.Protocol != 2 {
			t.Fatalf("our envelope decoded as protocol %d", m2.Protocol)
		}
		if enc2 := AppendRedisEnvelope(nil, &m2); !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzV1Body(f *testing.F) {
	for _, name := range []string{"redis/v1.json", "redis/v1_group.0.json"} {
		var env struct{ Body []byte }
		if err := json.Unmarshal(goldenFile(f, name), &env); err != nil {
			f.Fatal(err)
		}
		f.Add(env.Body)
	}
	f.Add([]byte(`{"task": "t", "id": "i", "args": null, "kwargs": null, "taskset": "g"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		src := []byte(`{"body": "` + base64.StdEncoding.EncodeToString(body) +
			`", "content-type": "application/json", "headers": {}, "properties": {"delivery_tag": "d", "body_encoding": "base64"}}`)
		var m Message
		if DecodeRedisEnvelope(src, &m) != nil {
			return
		}
		if m.Protocol != 1 || len(m.Task) == 0 || len(m.ID) == 0 {
			t.Fatalf("v1 decode gave %+v", m)
		}
		if _, _, _, err := SplitJSONBody(m.Body); err != nil {
			t.Fatalf("converted body %s: %v", m.Body, err)
		}
	})
}

// amqpFromJSON turns fuzzed JSON into an AMQP header table.
func amqpFromJSON(b []byte) (map[string]any, bool) {
	v, err := jsonToAny(b)
	if err != nil {
		return nil, false
	}
	h, ok := v.(map[string]any)
	return h, ok
}

func FuzzDecodeAMQP(f *testing.F) {
	for _, name := range []string{"plain", "options", "msgpack", "v1"} {
		headers, p, body := loadAMQP(f, "amqp/"+name+".json")
		hj, err := appendAnyJSON(nil, headers, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(hj, p.ContentType, p.Expiration, p.Priority, body)
	}
	f.Fuzz(func(t *testing.T, headersJSON []byte, contentType, expiration string, priority uint8, body []byte) {
		headers, ok := amqpFromJSON(headersJSON)
		if !ok {
			return
		}
		p := AMQPProperties{ContentType: contentType, Expiration: expiration, Priority: priority}
		var m Message
		if DecodeAMQP(&m, headers, p, body) != nil {
			return
		}
		h2 := AMQPHeaders(&m, nil)
		p2 := AMQPPropertiesOf(&m)
		var m2 Message
		if err := DecodeAMQP(&m2, h2, p2, m.Body); err != nil {
			t.Fatalf("re-decoding our own headers %v: %v", h2, err)
		}
		if h3 := AMQPHeaders(&m2, nil); !reflect.DeepEqual(h2, h3) {
			t.Fatalf("not a fixed point:\n%v\n%v", h2, h3)
		}
	})
}

func FuzzSplitJSONBody(f *testing.F) {
	f.Add([]byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`))
	f.Add([]byte(`[[NaN, -Infinity, 1e5], {"a": "\ud83d\ude00"}, null]`))
	f.Add([]byte(`[[1, 2], {}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		args, kwargs, embed, err := SplitJSONBody(body)
		// Our scanner and encoding/json agree on validity (outside the
		// NaN/Infinity tokens Python writes and encoding/json refuses).
		if !bytes.ContainsAny(body, "NI") {
			ours := validJSON(body) == nil
			if std := json.Valid(body); ours != std && bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) < MaxDepth {
				t.Fatalf("validJSON = %v, json.Valid = %v for %q", ours, std, body)
			}
		}
		if err != nil {
			return
		}
		again := AppendJSONBody(nil, args, kwargs, embed)
		a2, k2, e2, err := SplitJSONBody(again)
		if err != nil || !bytes.Equal(a2, args) || !bytes.Equal(k2, kwargs) || (embed != nil && !bytes.Equal(e2, embed)) {
			t.Fatalf("re-split of %s: %v", again, err)
		}
	})
}

func FuzzAppendJSONArrayElems(f *testing.F) {
	f.Add([]byte(`[2, "a,b", {"k": [1, 2]}, [], null]`))
	f.Add([]byte(`[NaN, -Infinity, 1e5, "\ud83d\ude00"]`))
	f.Add([]byte(`[1, 2`))
	f.Fuzz(func(t *testing.T, src []byte) {
		elems, err := AppendJSONArrayElems(nil, src)
		if !bytes.ContainsAny(src, "NI") && bytes.Count(src, []byte("["))+bytes.Count(src, []byte("{")) < MaxDepth {
			if std := json.Valid(src) && bytes.HasPrefix(bytes.TrimLeft(src, " \t\r\n"), []byte("[")); (err == nil) != std {
				t.Fatalf("AppendJSONArrayElems err = %v, but encoding/json says valid array = %v for %q", err, std, src)
			}
		}
		if err != nil {
			return
		}
		// The elements, joined again, make an array that splits the same.
		again := []byte{'['}
		for i, e := range elems {
			if i > 0 {
				again = append(again, ',')
			}
			again = append(again, e...)
		}
		again = append(again, ']')
		elems2, err := AppendJSONArrayElems(nil, again)
		if err != nil || len(elems2) != len(elems) {
			t.Fatalf("re-split of %s: %d elements, %v; want %d", again, len(elems2), err, len(elems))
		}
		for i := range elems {
			if !bytes.Equal(elems[i], elems2[i]) {
				t.Fatalf("re-split of %s: element %d = %s, want %s", again, i, elems2[i], elems[i])
			}
		}
	})
}

func FuzzParseISOTime(f *testing.F) {
	for _, s := range []string{"2026-11-24T02:14:43.676182+00:00", "2024-01-02T03:04:05Z", "2026-11-24T02:14:49.489844",
		"2030-1-3", "2030-01-03 10:20-05:30", "9999-12-31T23:59:59.999999999Z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, err := ParseISOTime(b)
		if err != nil {
			return
		}
		back, err := ParseISOTime(AppendISOTime(nil, tm))
		if err != nil || !back.Equal(tm.Truncate(time.Microsecond)) {
			t.Fatalf("%q -> %v -> %s -> %v, %v", b, tm, AppendISOTime(nil, tm), back, err)
		}
		if dd, err := ParseISOTime(AppendDateDone(nil, tm)); err != nil || !dd.Equal(back) {
			t.Fatalf("date_done form of %v: %v %v", tm, dd, err)
		}
	})
}

func FuzzDecodeResultJSON(f *testing.F) {
	addGolden(f, "results/*.json")
	f.Fuzz(func(t *testing.T, src []byte) {
		var r Result
		if DecodeResultJSON(src, &r) != nil {
			return
		}
		enc := AppendResultJSON(nil, &r)
		var r2 Result
		if err := DecodeResultJSON(enc, &r2); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if enc2 := AppendResultJSON(nil, &r2); !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
		if refs, err := DecodeChildren(r.Children); err == nil {
			out := AppendChildren(nil, refs)
			if refs2, err := DecodeChildren(out); err != nil || !bytes.Equal(AppendChildren(nil, refs2), out) {
				t.Fatalf("children %s: %v", out, err)
			}
		}
		_, _ = DecodeException(r.Result)
	})
}

func FuzzDecodeGroupRecord(f *testing.F) {
	addGolden(f, "results/group.json")
	f.Add([]byte(`{"result": [["g", [["p", null], null]], [[["a", null], [[[["b", null], null]]]]]]}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		g, err := DecodeGroupRecord(src)
		if err != nil {
			return
		}
		enc := AppendGroupRecord(nil, &g)
		g2, err := DecodeGroupRecord(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if enc2 := AppendGroupRecord(nil, &g2); !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzSignatureUnmarshal(f *testing.F) {
	addGolden(f, "signatures/*.json")
	f.Fuzz(func(t *testing.T, src []byte) {
		var s Signature
		if s.UnmarshalJSON(src) != nil {
			return
		}
		enc := s.AppendJSON(nil)
		var s2 Signature
		if err := s2.UnmarshalJSON(enc); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if enc2 := s2.AppendJSON(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
		if s.SubtaskType == "chord" {
			_, _, _ = s.ChordParts()
		} else {
			_, _ = s.Tasks()
		}
		_, _ = DecodeEmbed(s.Kwargs)
	})
}
