package serializer

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
)

// interopScript runs in the real Python: for each body Go sent it calls
// kombu.serialization.loads (accepting that content type), describes the
// Python value it got (type names and text, so that Go can check them
// without its own decoder), and dumps it again with
// kombu.serialization.dumps for Go to decode.
const interopScript = `
import base64, datetime, json, sys
from kombu.serialization import dumps, loads

def describe(o):
    if isinstance(o, dict):
        return {str(k): describe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [describe(v) for v in o]
    t = type(o).__name__
    if isinstance(o, (bytes, bytearray)):
        return [t, o.hex()]
    if isinstance(o, str):
        return [t, o]
    if isinstance(o, datetime.datetime):
        return [t, o.isoformat()]
    if t == 'Timestamp':
        return [t, o.to_datetime().isoformat()]
    return [t, repr(o)]

out = {}
for name, req in json.load(sys.stdin).items():
    obj = loads(base64.b64decode(req['body']), req['content_type'], req['content_encoding'],
                accept=[req['content_type']])
    ctype, enc, body = dumps(obj, serializer=name)
    if isinstance(body, str):
        body = body.encode(enc)
    out[name] = {'describe': describe(obj), 'body': base64.b64encode(body).decode(),
                 'content_type': ctype, 'content_encoding': enc}
json.dump(out, sys.stdout)
`

// interopValue is the representative value each serializer sends.
func interopValue(s Serializer) map[string]any {
	v := map[string]any{
		"ints":    []any{1, -2, int64(1<<53 + 1), uint64(1<<63 + 5), int64(-1 << 63)},
		"floats":  []any{1.5, 100.0, 1e21, -0.25},
		"text":    []any{"h\u00e9llo \u2603 \U0001F600", "", "line1\nline2", "\x00\x07\x7f\u2028", "\"q\" \\ /"},
		"yaml11":  []any{"yes", "no", "on", "off", "null", "~", "1e3", ".inf", "=", "<<", "1:20", "0x1F", "0o17", "2024-01-02", "- x", "a: b", "#c", " lead", "trail "},
		"nested":  map[string]any{"list": []any{[]any{}, map[string]any{}, []any{nil, true, false}}, "k": "v"},
		"when":    time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC),
		"offset":  time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(5*3600+30*60))),
		"nothing": nil,
	}
	if s != JSON {
		v["bytes"] = []byte{0, 1, 0xff}
	}
	return v
}

// TestPythonInterop: Go encodes, kombu decodes and re-encodes, Go decodes.
func TestPythonInterop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, brokertest.Python, "-c", "import kombu.serialization, msgpack, yaml").CombinedOutput(); err != nil {
		brokertest.Unavailable(t, "kombu with msgpack and yaml is not importable by "+brokertest.Python+": "+string(out))
		return
	}
	type msg struct {
		Body            []byte          `json:"body"`
		ContentType     string          `json:"content_type"`
		ContentEncoding string          `json:"content_encoding"`
		Describe        json.RawMessage `json:"describe,omitempty"`
	}
	serializers := []Serializer{JSON, Msgpack, YAML}
	req := map[string]msg{}
	for _, s := range serializers {
		body, err := s.Append(nil, interopValue(s))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		req[s.Name] = msg{Body: body, ContentType: s.ContentType, ContentEncoding: s.ContentEncoding}
	}
	in, _ := json.Marshal(req)
	cmd := exec.CommandContext(ctx, brokertest.Python, "-c", interopScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var resp map[string]msg
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("python output %.200s: %v", raw, err)
	}

	for _, s := range serializers {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			r := resp[s.Name]
			if r.ContentType != s.ContentType || r.ContentEncoding != s.ContentEncoding {
				t.Errorf("kombu dumps gave %s/%s, we say %s/%s", r.ContentType, r.ContentEncoding, s.ContentType, s.ContentEncoding)
			}
			checkPythonView(t, s, r.Describe)

			// Decode kombu's re-encoding: exact integers, and the
			// strings, bytes and times each format gives.
			var got any
			if s == JSON {
				js, err := s.ToJSON(nil, r.Body)
				if err == nil {
					got, err = jsonToTree(js)
				}
				if err != nil {
					t.Fatal(err)
				}
			} else if err := s.Decode(r.Body, &got); err != nil {
				t.Fatal(err)
			}
			want := expectedBack(s)
			if !reflect.DeepEqual(got, want) {
				diffTrees(t, s.Name, got, want)
			}
		})
	}
}

// checkPythonView checks what the Python task would receive.
func checkPythonView(t *testing.T, s Serializer, raw json.RawMessage) {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	pair := func(typ, val string) []any { return []any{typ, val} }
	expect := map[string]any{
		"ints":   []any{pair("int", "1"), pair("int", "-2"), pair("int", "9007199254740993"), pair("int", "9223372036854775813"), pair("int", "-9223372036854775808")},
		"floats": []any{pair("float", "1.5"), pair("float", "100.0"), pair("float", "1e+21"), pair("float", "-0.25")},
		"nested": map[string]any{"list": []any{[]any{}, map[string]any{}, []any{pair("NoneType", "None"), pair("bool", "True"), pair("bool", "False")}}, "k": pair("str", "v")},
	}
	var text, yaml11 []any
	for _, x := range interopValue(s)["text"].([]any) {
		text = append(text, pair("str", x.(string)))
	}
	for _, x := range interopValue(s)["yaml11"].([]any) {
		yaml11 = append(yaml11, pair("str", x.(string)))
	}
	expect["text"], expect["yaml11"] = text, yaml11
	expect["nothing"] = pair("NoneType", "None")
	switch s {
	case JSON: // kombu 5.2: strings, with Z
		expect["when"] = pair("str", "2024-01-02T03:04:05.123456Z")
		expect["offset"] = pair("str", "2024-01-02T03:04:05-05:30")
	case Msgpack: // msgpack's timestamp extension; bytes stay bytes
		expect["when"] = pair("Timestamp", "2024-01-02T03:04:05.123456+00:00")
		expect["offset"] = pair("Timestamp", "2024-01-02T08:34:05+00:00")
		expect["bytes"] = pair("bytes", "0001ff")
	case YAML: // PyYAML timestamps: datetime; !!binary: bytes
		expect["when"] = pair("datetime", "2024-01-02T03:04:05.123456+00:00")
		expect["offset"] = pair("datetime", "2024-01-02T03:04:05-05:30")
		expect["bytes"] = pair("bytes", "0001ff")
	}
	for k, want := range expect {
		if !reflect.DeepEqual(d[k], want) {
			t.Errorf("Python received %s = %v, want %v", k, d[k], want)
		}
	}
	if len(d) != len(expect) {
		t.Errorf("Python received %d keys, want %d", len(d), len(expect))
	}
}

// expectedBack is what we decode from kombu's re-encoding of interopValue.
func expectedBack(s Serializer) any {
	v := map[string]any{
		"ints":    []any{int64(1), int64(-2), int64(1<<53 + 1), uint64(1<<63 + 5), int64(-1 << 63)},
		"floats":  []any{1.5, 100.0, 1e21, -0.25},
		"text":    interopValue(s)["text"],
		"yaml11":  interopValue(s)["yaml11"],
		"nested":  map[string]any{"list": []any{[]any{}, map[string]any{}, []any{nil, true, false}}, "k": "v"},
		"nothing": nil,
	}
	switch s {
	case JSON:
		v["when"] = "2024-01-02T03:04:05.123456Z"
		v["offset"] = "2024-01-02T03:04:05-05:30"
	case Msgpack:
		v["when"] = time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)
		v["offset"] = time.Date(2024, 1, 2, 8, 34, 5, 0, time.UTC)
		v["bytes"] = []byte{0, 1, 0xff}
	case YAML:
		v["when"] = "2024-01-02 03:04:05.123456+00:00" // safe_dump's form
		v["offset"] = "2024-01-02 03:04:05-05:30"
		v["bytes"] = []byte{0, 1, 0xff}
	}
	return v
}
