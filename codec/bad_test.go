package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/codec/compress"
	"github.com/celerity-go/celerity/codec/serializer"
)

// envelope builds a Redis envelope around the given headers and
// properties JSON, with body b (base64 when enc is true).
func envelope(headers, props, body string) []byte {
	return []byte(`{"body": ` + body + `, "content-type": "application/json", "content-encoding": "utf-8", ` +
		`"headers": ` + headers + `, "properties": ` + props + `}`)
}

const (
	okHeaders = `{"task": "t", "id": "i"}`
	okProps   = `{"delivery_tag": "d", "body_encoding": "base64"}`
	okBody    = `"W1tdLCB7fSwge31d"`
)

func TestDecodeRedisEnvelopeBadInput(t *testing.T) {
	t.Parallel()
	plain := string(goldenFile(t, "redis/plain.json"))
	tests := []struct {
		name string
		in   []byte
		err  error
		msg  string // substring of the error text
	}{
		{"empty", nil, ErrTruncated, "codec: envelope: unexpected end of input"},
		{"garbage", []byte("garbage"), ErrFieldType, "codec: envelope: want object, got invalid JSON"},
		{"array", []byte(`[1]`), ErrFieldType, "want object, got array"},
		{"truncated", []byte(plain[:len(plain)/2]), ErrTruncated, "unexpected end of input"},
		{"truncated in headers", []byte(plain[:300]), ErrTruncated, "headers"},
		{"trailing garbage", []byte(plain + "x"), ErrSyntax, "invalid character 'x'"},
		{"trailing comma", envelope(`{"task": "t", "id": "i",}`, okProps, okBody), ErrSyntax, "codec: headers: invalid character '}'"},
		{"missing colon", []byte(`{"body" "x"}`), ErrSyntax, "invalid character '\"'"},
		{"control char in string", envelope(`{"task": "a`+"\x01"+`", "id": "i"}`, okProps, okBody), ErrSyntax, "headers.task"},
		{"bad escape", envelope(`{"task": "\x", "id": "i"}`, okProps, okBody), ErrSyntax, "headers.task"},
		{"bad unicode escape", envelope(`{"task": "\u12G4", "id": "i"}`, okProps, okBody), ErrSyntax, "headers.task"},
		{"missing id", envelope(`{"task": "t"}`, okProps, okBody), ErrMissingField, "codec: headers.id: missing required field"},
		{"null id", envelope(`{"task": "t", "id": null}`, okProps, okBody), ErrMissingField, "headers.id"},
		{"empty task", envelope(`{"task": "", "id": "i"}`, okProps, okBody), ErrMissingField, "headers.task"},
		{"task not string", envelope(`{"task": 5, "id": "i"}`, okProps, okBody), ErrFieldType, "codec: headers.task: want string, got number"},
		{"retries string", envelope(`{"task": "t", "id": "i", "retries": "1"}`, okProps, okBody), ErrFieldType, "codec: headers.retries: want integer, got string"},
		{"retries float", envelope(`{"task": "t", "id": "i", "retries": 1.5}`, okProps, okBody), ErrFieldType, "headers.retries: want integer, got 1.5"},
		{"retries negative", envelope(`{"task": "t", "id": "i", "retries": -1}`, okProps, okBody), ErrBadValue, "headers.retries: out of range"},
		{"group_index object", envelope(`{"task": "t", "id": "i", "group_index": {}}`, okProps, okBody), ErrFieldType, "headers.group_index: want integer, got object"},
		{"timelimit string", envelope(`{"task": "t", "id": "i", "timelimit": "60"}`, okProps, okBody), ErrFieldType, "headers.timelimit: want [hard, soft] array, got string"},
		{"timelimit 1 element", envelope(`{"task": "t", "id": "i", "timelimit": [1]}`, okProps, okBody), ErrBadValue, "headers.timelimit: want [hard, soft]"},
		{"timelimit negative", envelope(`{"task": "t", "id": "i", "timelimit": [-1, null]}`, okProps, okBody), ErrBadValue, "negative"},
		{"timelimit NaN", envelope(`{"task": "t", "id": "i", "timelimit": [NaN, null]}`, okProps, okBody), ErrBadValue, "finite"},
		{"timelimit bool", envelope(`{"task": "t", "id": "i", "timelimit": [true, null]}`, okProps, okBody), ErrFieldType, "want number, got boolean"},
		{"eta number", envelope(`{"task": "t", "id": "i", "eta": 5}`, okProps, okBody), ErrFieldType, "headers.eta: want string, got number"},
		{"eta garbage", envelope(`{"task": "t", "id": "i", "eta": "tomorrow"}`, okProps, okBody), ErrBadValue, `headers.eta: bad time "tomorrow"`},
		{"expires month 13", envelope(`{"task": "t", "id": "i", "expires": "2020-13-01T00:00:00"}`, okProps, okBody), ErrBadValue, "headers.expires"},
		{"ignore_result string", envelope(`{"task": "t", "id": "i", "ignore_result": "yes"}`, okProps, okBody), ErrFieldType, "headers.ignore_result: want boolean, got string"},
		{"headers array", envelope(`[]`, okProps, okBody), ErrFieldType, "codec: envelope.headers: want object, got array"},
		{"no properties", []byte(`{"body": "", "headers": {"task": "t", "id": "i"}}`), ErrMissingField, "codec: properties.delivery_tag: missing required field"},
		{"no delivery_tag", envelope(okHeaders, `{"body_encoding": "base64"}`, okBody), ErrMissingField, "properties.delivery_tag"},
		{"properties string", envelope(okHeaders, `"x"`, okBody), ErrFieldType, "envelope.properties: want object, got string"},
		{"priority 300", envelope(okHeaders, `{"delivery_tag": "d", "priority": 300}`, okBody), ErrBadValue, "properties.priority: out of range"},
		{"priority string", envelope(okHeaders, `{"delivery_tag": "d", "priority": "5"}`, okBody), ErrFieldType, "properties.priority: want integer, got string"},
		{"delivery_mode bool", envelope(okHeaders, `{"delivery_tag": "d", "delivery_mode": true}`, okBody), ErrFieldType, "properties.delivery_mode"},
		{"expiration garbage", envelope(okHeaders, `{"delivery_tag": "d", "expiration": "soon"}`, okBody), ErrBadValue, "properties.expiration: want non-negative milliseconds"},
		{"expiration negative", envelope(okHeaders, `{"delivery_tag": "d", "expiration": -5}`, okBody), ErrBadValue, "properties.expiration: negative expiration"},
		{"delivery_info array", envelope(okHeaders, `{"delivery_tag": "d", "delivery_info": []}`, okBody), ErrFieldType, "properties.delivery_info: want object, got array"},
		{"routing_key number", envelope(okHeaders, `{"delivery_tag": "d", "delivery_info": {"routing_key": 1}}`, okBody), ErrFieldType, "properties.delivery_info.routing_key: want string, got number"},
		{"bad base64", envelope(okHeaders, okProps, `"W1td!!!"`), ErrBase64, "codec: envelope.body: invalid base64"},
		{"unpadded base64", envelope(okHeaders, okProps, `"W1tdLCB7fSwge31"`), ErrBase64, "envelope.body"},
		{"body number", envelope(okHeaders, okProps, `5`), ErrFieldType, "codec: envelope.body: want string, got number"},
		{"body array", envelope(okHeaders, `{"delivery_tag": "d"}`, `[[], {}, {}]`), ErrFieldType, "envelope.body: want string, got array"},
		{"unknown body_encoding", envelope(okHeaders, `{"delivery_tag": "d", "body_encoding": "rot13"}`, okBody), ErrUnsupportedBodyEncoding, `properties.body_encoding: unsupported body encoding "rot13"`},
		{"v1 not a dict", envelope(`{}`, okProps, okBody), ErrUnknownMessage, "codec: body: unknown message"},
		{"v1 dict without task", envelope(`null`, `{"delivery_tag": "d"}`, `"{\"id\": \"i\"}"`), ErrUnknownMessage, "unknown message"},
		{"v1 without id", envelope(`{}`, `{"delivery_tag": "d"}`, `"{\"task\": \"t\"}"`), ErrMissingField, "codec: body.id: missing required field"},
		{"v1 kwargs list", envelope(`{}`, `{"delivery_tag": "d"}`, `"{\"task\": \"t\", \"id\": \"i\", \"kwargs\": []}"`), ErrFieldType, "body.kwargs: want object, got array"},
		{"v1 garbage body", envelope(`{}`, `{"delivery_tag": "d"}`, `"{\"task\": "`), ErrTruncated, "body"},
		{"v1 pickle", []byte(`{"body": "gAN9", "content-type": "application/x-python-serialize", "headers": {}, "properties": {"delivery_tag": "d", "body_encoding": "base64"}}`),
			ErrUnsupportedContentType, `properties.content_type: pickle is never decoded`},
		{"v1 unknown content type", []byte(`{"body": "gAN9", "content-type": "text/csv", "headers": {}, "properties": {"delivery_tag": "d", "body_encoding": "base64"}}`),
			ErrUnsupportedContentType, `properties.content_type: unsupported content type "text/csv"`},
		{"deep nesting", envelope(`{"task": "t", "id": "i", "x": `+strings.Repeat("[", MaxDepth+5)+strings.Repeat("]", MaxDepth+5)+`}`, okProps, okBody), ErrTooDeep, "nesting too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m Message
			err := DecodeRedisEnvelope(tt.in, &m)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err %T is not a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestAppendJSONArrayElems(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		`[]`:                                  nil,
		` [ 1 ] `:                             {`1`},
		`[2, "a,b", {"k": [1, 2]}, [], null]`: {`2`, `"a,b"`, `{"k": [1, 2]}`, `[]`, `null`},
		`[NaN, -Infinity, "\"]", 1e5]`:        {`NaN`, `-Infinity`, `"\"]"`, `1e5`},
	} {
		got, err := AppendJSONArrayElems(make([][]byte, 1, 4), []byte(in))
		if err != nil {
			t.Errorf("AppendJSONArrayElems(%s): %v", in, err)
			continue
		}
		if got[0] != nil || len(got)-1 != len(want) {
			t.Errorf("AppendJSONArrayElems(%s) = %q, want dst's element then %q", in, got, want)
			continue
		}
		for i, w := range want {
			if string(got[i+1]) != w {
				t.Errorf("AppendJSONArrayElems(%s)[%d] = %s, want %s", in, i, got[i+1], w)
			}
		}
	}
	tests := []struct {
		in, msg string
		err     error
	}{
		{"", "codec: array: unexpected end of input", ErrTruncated},
		{`{"a": 1}`, "codec: array: want an array, got object", ErrBodyShape},
		{`"x"`, "want an array, got string", ErrBodyShape},
		{`[1, 2`, "unexpected end of input", ErrTruncated},
		{`[1,]`, "invalid character ']'", ErrSyntax},
		{`[1] [2]`, "invalid character '['", ErrSyntax},
		{`[1 2]`, "invalid character '2'", ErrSyntax},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "", ErrTooDeep},
	}
	for _, tt := range tests {
		_, err := AppendJSONArrayElems(nil, []byte(tt.in))
		if !errors.Is(err, tt.err) || err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("AppendJSONArrayElems(%q) = %v, want %v containing %q", tt.in, err, tt.err, tt.msg)
		}
	}
}

func TestSplitJSONBodyBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, msg string
		err     error
	}{
		{"", "codec: body: unexpected end of input", ErrTruncated},
		{"[[1, 2], {}]", "codec: body: want 3 elements [args, kwargs, embed], got 2", ErrBodyShape},
		{"[[1], {}, {}, {}]", "got 4", ErrBodyShape},
		{"[]", "got 0", ErrBodyShape},
		{`{"args": []}`, "codec: body: want a 3-element array, got object", ErrBodyShape},
		{`[{}, {}, {}]`, "codec: body.args: want array, got object", ErrBodyShape},
		{`[[], [], {}]`, "codec: body.kwargs: want object, got array", ErrBodyShape},
		{`[[], {}, []]`, "codec: body.embed: want object or null, got array", ErrBodyShape},
		{`[[], {}, {}`, "unexpected end of input", ErrTruncated},
		{`[[], {}, {}] x`, "invalid character 'x'", ErrSyntax},
		{`[[1,], {}, {}]`, "invalid character ']'", ErrSyntax},
		{`[[01], {}, {}]`, "invalid character '1'", ErrSyntax},
		{`[[1.], {}, {}]`, "invalid character ']'", ErrSyntax},
		{`[[tru], {}, {}]`, "invalid character", ErrSyntax},
		{`[[], {"a" 1}, {}]`, "invalid character '1'", ErrSyntax},
		{`[[], {1: 1}, {}]`, "invalid character '1'", ErrSyntax},
		{"\xff", "codec: body: want a 3-element array, got invalid JSON", ErrBodyShape},
	}
	for _, tt := range tests {
		_, _, _, err := SplitJSONBody([]byte(tt.in))
		if !errors.Is(err, tt.err) || err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("SplitJSONBody(%q) = %v, want %v containing %q", tt.in, err, tt.err, tt.msg)
		}
	}
}

func TestBodyJSONErrors(t *testing.T) {
	t.Parallel()
	bomb, err := compress.Zlib.Append(nil, bytes.Repeat([]byte("["), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    Message
		err  error
		msg  string
	}{
		{"pickle", Message{ContentType: []byte(ContentTypePickle), Body: []byte("x")}, serializer.ErrContentDisallowed,
			`codec: properties.content_type: pickle is never decoded`},
		{"pickle is unsupported", Message{ContentType: []byte(ContentTypePickle), Body: []byte("x")}, ErrUnsupportedContentType, "pickle"},
		{"bad msgpack", Message{ContentType: []byte(ContentTypeMsgpack), Body: []byte{0xc1}}, serializer.ErrDecode, "codec: body: serializer: msgpack"},
		{"bad yaml", Message{ContentType: []byte(ContentTypeYAML), Body: []byte("[1, 2")}, serializer.ErrDecode, "codec: body: serializer: yaml"},
		{"msgpack too large as JSON", Message{ContentType: []byte(ContentTypeMsgpack), Body: append([]byte{0xdc, 0x03, 0x00}, bytes.Repeat([]byte{0xc0}, 768)...)},
			ErrTooLarge, "codec: body: larger than the limit of 1000 bytes"},
		{"unknown type", Message{ContentType: []byte("text/csv"), Body: []byte("x")}, ErrUnsupportedContentType, `"text/csv"`},
		{"unknown compression", Message{Compression: []byte("application/x-rar"), Body: []byte("x")}, ErrUnsupportedCompression,
			`codec: headers.compression: unsupported compression "application/x-rar"`},
		{"corrupt zlib", Message{Compression: []byte("application/x-gzip"), Body: []byte("not zlib")}, compress.ErrCorrupt, "codec: body.compression"},
		{"too large raw", Message{Body: bytes.Repeat([]byte(" "), 2000)}, ErrTooLarge, "codec: body: larger than the limit of 1000 bytes"},
	}
	for _, tt := range tests {
		_, err := tt.m.BodyJSON(1000)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", tt.name, err, tt.err, tt.msg)
		}
	}
	// A decompression bomb: ~1 KiB that inflates to 1 MiB.
	m := Message{Compression: []byte("application/x-gzip"), Body: bomb}
	_, err = m.BodyJSON(64 << 10)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, compress.ErrTooLarge) || !strings.Contains(err.Error(), "codec: body.compression: ") {
		t.Errorf("bomb: err = %v, want ErrTooLarge and compress.ErrTooLarge", err)
	}
	if cap(m.scratch) > 1<<20 {
		t.Errorf("bomb grew scratch to %d bytes", cap(m.scratch))
	}
}

func TestDecodeAMQPBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]any
		props   AMQPProperties
		body    string
		err     error
		msg     string
	}{
		{"retries string", map[string]any{"task": "t", "id": "i", "retries": "1"}, AMQPProperties{}, "", ErrFieldType, "codec: amqp.retries: want integer, got string"},
		{"retries float", map[string]any{"task": "t", "id": "i", "retries": 1.5}, AMQPProperties{}, "", ErrFieldType, "amqp.retries: want integer, got float64"},
		{"retries huge", map[string]any{"task": "t", "id": "i", "retries": int64(1) << 40}, AMQPProperties{}, "", ErrBadValue, "amqp.retries: out of range"},
		{"task int", map[string]any{"task": 5, "id": "i"}, AMQPProperties{}, "", ErrFieldType, "amqp.task: want string, got int"},
		{"missing id", map[string]any{"task": "t"}, AMQPProperties{}, "", ErrMissingField, "codec: amqp.id: missing required field"},
		{"timelimit 3", map[string]any{"task": "t", "id": "i", "timelimit": []any{1, 2, 3}}, AMQPProperties{}, "", ErrFieldType, "amqp.timelimit"},
		{"timelimit string", map[string]any{"task": "t", "id": "i", "timelimit": []any{"1", nil}}, AMQPProperties{}, "", ErrFieldType, "want number or null, got string"},
		{"eta int", map[string]any{"task": "t", "id": "i", "eta": int32(5)}, AMQPProperties{}, "", ErrFieldType, "amqp.eta: want ISO-8601 string, got int32"},
		{"eta garbage", map[string]any{"task": "t", "id": "i", "eta": "soon"}, AMQPProperties{}, "", ErrBadValue, `amqp.eta: bad time "soon"`},
		{"ignore_result int", map[string]any{"task": "t", "id": "i", "ignore_result": 1}, AMQPProperties{}, "", ErrFieldType, "amqp.ignore_result: want boolean"},
		{"bad expiration", map[string]any{"task": "t", "id": "i"}, AMQPProperties{Expiration: "x"}, "", ErrBadValue, "amqp.expiration"},
		{"extra channel", map[string]any{"task": "t", "id": "i", "x": make(chan int)}, AMQPProperties{}, "", ErrFieldType, "codec: amqp.x: unsupported AMQP value of type chan int"},
		{"no task, v2 body", map[string]any{}, AMQPProperties{ContentType: ContentTypeJSON}, "[[], {}, {}]", ErrUnknownMessage, "unknown message"},
	}
	for _, tt := range tests {
		var m Message
		err := DecodeAMQP(&m, tt.headers, tt.props, []byte(tt.body))
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", tt.name, err, tt.err, tt.msg)
		}
	}
}

func TestDecodeResultJSONBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  string
		err error
		msg string
	}{
		{``, ErrTruncated, "codec: result: unexpected end of input"},
		{`[]`, ErrFieldType, "codec: result: want object, got array"},
		{`{"result": 1}`, ErrMissingField, "codec: result.status: missing required field"},
		{`{"status": ""}`, ErrMissingField, "result.status"},
		{`{"status": 1}`, ErrFieldType, "codec: result.status: want string, got number"},
		{`{"status": "SUCCESS", "children": {}}`, ErrFieldType, "result.children: want array, got object"},
		{`{"status": "SUCCESS", "date_done": "yesterday"}`, ErrBadValue, `result.date_done: bad time "yesterday"`},
		{`{"status": "SUCCESS", "traceback": []}`, ErrFieldType, "result.traceback: want string, got array"},
		{`{"status": "SUCCESS", "retries": "0"}`, ErrFieldType, "result.retries"},
		{`{"status": "SUCCESS", "result": [1,}`, ErrSyntax, "invalid character '}'"},
		{`{"status": "SUCCESS", "result": 1`, ErrTruncated, "unexpected end of input"},
	}
	for _, tt := range tests {
		var r Result
		err := DecodeResultJSON([]byte(tt.in), &r)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("DecodeResultJSON(%s) = %v, want %v containing %q", tt.in, err, tt.err, tt.msg)
		}
	}
}

func TestGroupAndChildrenBadInput(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{}`, `{"result": null}`, `{"result": [["g", null]]}`, `{"result": [["g", null], {}]}`,
		`{"result": [[1, null], null]}`, `{"result": [["g", null, 1], null]}`, `{"result": [["g", null], null, 1]}`, `[]`, `{"result": [["g", null], [1]]}`} {
		if _, err := DecodeGroupRecord([]byte(in)); err == nil {
			t.Errorf("DecodeGroupRecord(%s) succeeded", in)
		} else if !strings.HasPrefix(err.Error(), "codec: group") {
			t.Errorf("DecodeGroupRecord(%s) = %v", in, err)
		}
	}
	for _, in := range []string{`{}`, `[1]`, `[[["a"], null]]`, `[[["a", null], 5]]`, `[[["a", null], null]`} {
		if _, err := DecodeChildren([]byte(in)); err == nil {
			t.Errorf("DecodeChildren(%s) succeeded", in)
		}
	}
	// A bare id in the [id, parent] position is accepted, as by Celery.
	if r, err := DecodeResultRef([]byte(`["abc", null]`)); err != nil || string(r.ID) != "abc" {
		t.Errorf("bare id: %+v %v", r, err)
	}
}

func TestSignatureBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, msg string }{
		{`[]`, "codec: signature: want signature object, got array"},
		{`{"args": []}`, "codec: signature.task: missing required field"},
		{`{"task": 1}`, "codec: signature.task: want string, got number"},
		{`{"task": "t", "args": {}}`, "codec: signature.args: want array, got object"},
		{`{"task": "t", "kwargs": []}`, "codec: signature.kwargs: want object, got array"},
		{`{"task": "t", "options": []}`, "codec: signature.options: want object, got array"},
		{`{"task": "t", "immutable": "yes"}`, "codec: signature.immutable: want boolean, got string"},
		{`{"task": "t", "options": {"link": [{"args": []}]}}`, "signature.task: missing required field"},
		{`{"task": "t"`, "unexpected end of input"},
		{`{"task": "t"} {}`, "invalid character '{'"},
	}
	for _, tt := range tests {
		var s Signature
		err := s.UnmarshalJSON([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("UnmarshalJSON(%s) = %v, want %q", tt.in, err, tt.msg)
		}
	}
	if _, err := DecodeEmbed([]byte(`{"chain": 5}`)); err == nil || !strings.Contains(err.Error(), "embed.chain") {
		t.Errorf("DecodeEmbed: %v", err)
	}
}

func TestParseISOTimeBadInput(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "2020", "2020-01", "2020-1-", "20200101", "2020-01-01T", "2020-01-01T1:00",
		"2020-01-01T10", "2020-01-01T10:00:", "2020-01-01T10:00:00.", "2020-01-01T10:00:00+1:00",
		"2020-01-01T10:00:00+01", "2020-01-01T10:00:00Zx", "2020-13-01", "2020-02-30", "2021-02-29",
		"2020-01-01T24:00", "2020-01-01T10:60", "2020-01-01T10:00:60", "0000-01-01",
		"2020-01-01T10:00:00+24:00", "2020-01-01T10:00:00 UTC", "x020-01-01"} {
		if tm, err := ParseISOTime([]byte(in)); err == nil {
			t.Errorf("ParseISOTime(%q) = %v, want error", in, tm)
		} else if !strings.HasPrefix(err.Error(), "codec: time: ") || !(errors.Is(err, ErrSyntax) || errors.Is(err, ErrBadValue)) {
			t.Errorf("ParseISOTime(%q) error %v", in, err)
		}
	}
}
