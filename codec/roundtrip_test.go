package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/celerity-go/celerity/codec/compress"
	"github.com/celerity-go/celerity/codec/serializer"
)

// fullMessage returns a message with every field set, including strings
// that need escaping.
func fullMessage() *Message {
	m := &Message{
		Lang:            []byte("go"),
		Task:            []byte("proj.tasks.add"),
		ID:              []byte("6f1c7a4e-8d2b-4c4f-9a51-2b8e0f3c9d10"),
		Shadow:          []byte("add \"shadow\" \u00e9\U0001F600\n"),
		ETA:             time.Date(2026, 11, 24, 2, 14, 43, 676182000, time.UTC),
		Expires:         time.Date(2026, 11, 24, 2, 24, 13, 0, time.UTC),
		Group:           []byte("g-1"),
		GroupIndex:      3,
		HasGroupIndex:   true,
		Retries:         2,
		TimeLimit:       TimeLimit{Hard: 60, Soft: 50.5, HasHard: true, HasSoft: true},
		RootID:          []byte("root-1"),
		ParentID:        []byte("parent-1"),
		ArgsRepr:        []byte("(2, 3)"),
		KwargsRepr:      []byte("{'y': '\\\\'}"),
		Origin:          []byte("gen1@host"),
		IgnoreResult:    true,
		Compression:     []byte("application/x-gzip"),
		ExtraHeaders:    []byte(`{"x-a": [1, {"b": null}], "stamps": {}}`),
		CorrelationID:   []byte("6f1c7a4e-8d2b-4c4f-9a51-2b8e0f3c9d10"),
		ReplyTo:         []byte("reply-1"),
		ContentType:     []byte(ContentTypeJSON),
		ContentEncoding: []byte(EncodingUTF8),
		DeliveryMode:    2,
		Priority:        7,
		Expiration:      600000,
		HasExpiration:   true,
		Exchange:        []byte("ex"),
		RoutingKey:      []byte("celery"),
		DeliveryTag:     []byte("tag-1"),
		Redelivered:     true,
		Body:            []byte("\x00\x01binary\xff body"),
		Protocol:        2,
	}
	return m
}

// dispatchMessage has every header the worker needs to dispatch set.
func dispatchMessage() *Message {
	m := fullMessage()
	m.Body = AppendJSONBody(nil, []byte("[2, 3]"), nil, nil)
	m.Compression = nil
	return m
}

// exported returns m's exported fields for comparison, with empty
// byte slices normalised to nil.
func exported(m *Message) Message {
	c := *m
	c.scratch, c.bodyJSON = nil, nil
	c.idBuf, c.tagBuf = [36]byte{}, [36]byte{}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.CanSet() && f.Kind() == reflect.Slice && f.Len() == 0 {
			f.SetZero()
		}
	}
	return c
}

func TestRedisRoundTrip(t *testing.T) {
	t.Parallel()
	want := fullMessage()
	env := AppendRedisEnvelope(nil, want)
	if !json.Valid(env) {
		t.Fatalf("invalid JSON: %s", env)
	}
	var got Message
	if err := DecodeRedisEnvelope(env, &got); err != nil {
		t.Fatal(err)
	}
	if g, w := exported(&got), exported(want); !reflect.DeepEqual(g, w) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, w)
	}
	// And once more: encoding the decoded message gives the same bytes.
	if again := AppendRedisEnvelope(nil, &got); !bytes.Equal(again, env) {
		t.Errorf("second encoding differs:\n%s\n%s", again, env)
	}
}

func TestRedisEncoderDefaults(t *testing.T) {
	t.Parallel()
	m := &Message{Task: []byte("t"), ID: []byte("i"), Body: []byte("[[], {}, {}]")}
	env := AppendRedisEnvelope(nil, m)
	re := regexp.MustCompile(`^\{"body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8", "content-type": "application/json", ` +
		`"headers": \{"lang": "go", "task": "t", "id": "i", "shadow": null, "eta": null, "expires": null, "group": null, ` +
		`"group_index": null, "retries": 0, "timelimit": \[null, null\], "root_id": "i", "parent_id": null, ` +
		`"argsrepr": "", "kwargsrepr": "", "origin": null, "ignore_result": false\}, "properties": \{"correlation_id": "i", ` +
		`"reply_to": "", "delivery_mode": 2, "delivery_info": \{"exchange": "", "routing_key": ""\}, "priority": 0, ` +
		`"body_encoding": "base64", "delivery_tag": "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}\}$`)
	if !re.Match(env) {
		t.Errorf("defaults: %s", env)
	}
	if len(m.DeliveryTag) != 0 {
		t.Error("encoder modified m")
	}
	m.ContentType = []byte(ContentTypeMsgpack)
	if env := AppendRedisEnvelope(nil, m); !bytes.Contains(env, []byte(`"content-encoding": "binary"`)) {
		t.Errorf("msgpack encoding default: %s", env)
	}
}

func TestAMQPRoundTrip(t *testing.T) {
	t.Parallel()
	want := fullMessage()
	want.Exchange, want.RoutingKey, want.DeliveryTag, want.Redelivered = nil, nil, nil, false
	headers := AMQPHeaders(want, nil)
	for k, v := range headers {
		switch v.(type) {
		case nil, string, bool, int32, int64, float64, []any, map[string]any:
		default:
			t.Errorf("header %s has type %T", k, v)
		}
	}
	if tl := headers["timelimit"].([]any); tl[0] != int32(60) || tl[1] != 50.5 {
		t.Errorf("timelimit = %#v", tl)
	}
	if headers["eta"] != "2026-11-24T02:14:43.676182+00:00" || headers["group_index"] != int32(3) {
		t.Errorf("eta/group_index: %#v %#v", headers["eta"], headers["group_index"])
	}
	p := AMQPPropertiesOf(want)
	if p.Expiration != "600000" || p.Priority != 7 || p.DeliveryMode != 2 {
		t.Errorf("properties: %+v", p)
	}
	var got Message
	if err := DecodeAMQP(&got, headers, p, want.Body); err != nil {
		t.Fatal(err)
	}
	// ExtraHeaders come back with sorted keys.
	if string(got.ExtraHeaders) != `{"stamps": {}, "x-a": [1, {"b": null}]}` {
		t.Errorf("extra headers: %s", got.ExtraHeaders)
	}
	got.ExtraHeaders = want.ExtraHeaders
	if g, w := exported(&got), exported(want); !reflect.DeepEqual(g, w) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, w)
	}
	// A reused map is cleared first.
	again := AMQPHeaders(&Message{Task: []byte("t"), ID: []byte("i")}, headers)
	if _, ok := again["x-a"]; ok || again["root_id"] != "i" || again["shadow"] != nil {
		t.Errorf("reused map: %v", again)
	}
}

func TestDecodeAMQPTolerantTypes(t *testing.T) {
	t.Parallel()
	eta := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	headers := map[string]any{
		"task": []byte("t"), "id": "i", "retries": int8(3), "group_index": uint16(2),
		"timelimit": []any{float32(1.5), int64(10)}, "eta": eta, "expires": nil,
		"ignore_result": true, "x-time": eta, "x-dec": struct {
			Scale uint8
			Value int32
		}{2, -12345},
		"x-bytes": []byte("b"), "x-u": uint64(7), "x-table": amqpTable{"k": []any{int16(1)}},
	}
	var m Message
	if err := DecodeAMQP(&m, headers, AMQPProperties{}, []byte("[[], {}, {}]")); err != nil {
		t.Fatal(err)
	}
	if m.Retries != 3 || m.GroupIndex != 2 || !m.HasGroupIndex || !m.ETA.Equal(eta) ||
		m.TimeLimit != (TimeLimit{Hard: 1.5, Soft: 10, HasHard: true, HasSoft: true}) || !m.IgnoreResult {
		t.Errorf("%+v", m)
	}
	want := `{"x-bytes": "b", "x-dec": "-123.45", "x-table": {"k": [1]}, "x-time": "2030-01-02T02:04:05+00:00", "x-u": 7}`
	if string(m.ExtraHeaders) != want {
		t.Errorf("extra = %s\nwant %s", m.ExtraHeaders, want)
	}
}

func TestV1Conversion(t *testing.T) {
	t.Parallel()
	body := `{"task": "t.add", "id": "id-1", "args": [1, 2], "kwargs": {"k": "\u00e9"}, "group": "ignored",
		"taskset": "ts-1", "group_index": 1, "retries": 2, "eta": "2030-01-02T03:04:05Z", "expires": null,
		"utc": true, "callbacks": [{"task": "cb", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}],
		"errbacks": null, "timelimit": [null, 7], "chord": null, "root_id": "r", "parent_id": "p", "extra": {"x": 1}}`
	m := &Message{Task: nil, Body: []byte(body), ContentType: []byte(ContentTypeJSON)}
	env := AppendRedisEnvelope(nil, m)
	// Make it a v1 envelope: empty headers.
	i := bytes.Index(env, []byte(`"headers": {`))
	j := bytes.Index(env, []byte(`}, "properties"`))
	env = append(append(env[:i:i], `"headers": {}`...), env[j+1:]...)
	var got Message
	if err := DecodeRedisEnvelope(env, &got); err != nil {
		t.Fatal(err)
	}
	wantBody := `[[1, 2], {"k": "\u00e9"}, {"callbacks": [{"task": "cb", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}], "errbacks": null, "chain": null, "chord": null}]`
	if got.Protocol != 1 || string(got.Task) != "t.add" || string(got.ID) != "id-1" || string(got.Group) != "ts-1" ||
		got.GroupIndex != 1 || got.Retries != 2 || !got.ETA.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		got.TimeLimit != (TimeLimit{Soft: 7, HasSoft: true}) || string(got.RootID) != "r" || string(got.ParentID) != "p" ||
		string(got.Body) != wantBody {
		t.Errorf("v1: %+v\nbody %s", got, got.Body)
	}
	if b, err := got.BodyJSON(0); err != nil || string(b) != wantBody {
		t.Errorf("BodyJSON = %s, %v", b, err)
	}

	// The same body as msgpack, zlib-compressed: converted the same way.
	packed, err := serializer.FromJSON(nil, serializer.Msgpack, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	zipped, err := compress.Zlib.Append(nil, packed)
	if err != nil {
		t.Fatal(err)
	}
	m = &Message{Body: zipped, ContentType: []byte(ContentTypeMsgpack), DeliveryTag: []byte("d")}
	headers := map[string]any{"compression": "application/x-gzip"}
	if err := DecodeAMQP(&got, headers, AMQPPropertiesOf(m), m.Body); err != nil {
		t.Fatal(err)
	}
	if got.Protocol != 1 || string(got.Task) != "t.add" || string(got.Group) != "ts-1" || len(got.Compression) != 0 ||
		string(got.ContentType) != ContentTypeJSON {
		t.Errorf("v1 msgpack+zlib: %+v", got)
	}
	if _, k, e, err := SplitJSONBody(got.Body); err != nil || string(k) != "{\"k\":\"\u00e9\"}" || !bytes.Contains(e, []byte(`"task":"cb"`)) {
		t.Errorf("v1 msgpack+zlib body %s: %v", got.Body, err)
	}
}

func TestClone(t *testing.T) {
	t.Parallel()
	src := fullMessage()
	env := AppendRedisEnvelope(nil, src)
	var w Message
	if err := DecodeRedisEnvelope(bytes.Clone(env), &w); err != nil {
		t.Fatal(err)
	}
	want := exported(&w)
	m := AcquireMessage()
	if err := DecodeRedisEnvelope(env, m); err != nil {
		t.Fatal(err)
	}
	c := m.Clone()
	for i := range env {
		env[i] = 'x' // the clone must not alias the source buffer
	}
	ReleaseMessage(m)
	if got := exported(c); !reflect.DeepEqual(got, want) {
		t.Errorf("clone:\n got %+v\nwant %+v", got, want)
	}
	ReleaseMessage(c)
}

func TestPoolAndIDs(t *testing.T) {
	t.Parallel()
	m := AcquireMessage()
	m.NewID()
	m.NewDeliveryTag()
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !re.Match(m.ID) || !re.Match(m.DeliveryTag) || bytes.Equal(m.ID, m.DeliveryTag) {
		t.Errorf("ids: %s %s", m.ID, m.DeliveryTag)
	}
	if u, v := NewUUID(), AppendUUID([]byte("id=")); !re.MatchString(u) || !re.Match(v[3:]) || string(v[:3]) != "id=" || u == string(v[3:]) {
		t.Errorf("NewUUID %s, AppendUUID %s", u, v)
	}
	seen := map[string]bool{}
	for range 1000 {
		m.NewID()
		if seen[string(m.ID)] {
			t.Fatal("duplicate id")
		}
		seen[string(m.ID)] = true
	}
	a := m.Own([]byte("abc"))
	b := m.OwnString("def")
	a = append(a, 'X') // capacity-limited: must not clobber b
	if string(b) != "def" || string(a) != "abcX" {
		t.Errorf("Own: %q %q", a, b)
	}
	if m.Own(nil) != nil {
		t.Error("Own(nil) != nil")
	}
	m.scratch = make([]byte, 0, maxPooledScratch+1)
	ReleaseMessage(m)
	ReleaseMessage(nil)
	m2 := AcquireMessage()
	if len(m2.Task) != 0 || len(m2.ID) != 0 || cap(m2.scratch) > maxPooledScratch {
		t.Errorf("acquired message not reset: %+v cap=%d", m2, cap(m2.scratch))
	}
	ReleaseMessage(m2)
}

func TestEscapedStringsUseScratch(t *testing.T) {
	t.Parallel()
	env := []byte(`{"body": "", "headers": {"task": "a\"b\u00e9\ud83d\ude00\ud800x", "id": "\/i", "x\u002dkey": "v"}, ` +
		`"properties": {"delivery_tag": "t", "body_encoding": null}}`)
	var m Message
	if err := DecodeRedisEnvelope(env, &m); err != nil {
		t.Fatal(err)
	}
	if string(m.Task) != "a\"b\u00e9\U0001F600\uFFFDx" || string(m.ID) != "/i" || string(m.ExtraHeaders) != `{"x\u002dkey": "v"}` || len(m.Body) != 0 {
		t.Errorf("task=%q id=%q extra=%s body=%q", m.Task, m.ID, m.ExtraHeaders, m.Body)
	}
	// A raw (not base64) body, as kombu accepts when body_encoding is absent.
	env = []byte(`{"body": "[[1], {}, {}]", "headers": {"task": "t", "id": "i"}, "properties": {"delivery_tag": "t"}}`)
	if err := DecodeRedisEnvelope(env, &m); err != nil || string(m.Body) != "[[1], {}, {}]" {
		t.Errorf("raw body %q: %v", m.Body, err)
	}
}

func TestAppendStringMatchesPython(t *testing.T) {
	t.Parallel()
	// Expected values from Python's json.dumps.
	for in, want := range map[string]string{
		"plain":        `"plain"`,
		"q\"b\\s/":     `"q\"b\\s/"`,
		"\n\r\t\b\f":   `"\n\r\t\b\f"`,
		"\x00\x1f\x7f": `"\u0000\u001f\u007f"`,
		"\u00e9\u20ac": `"\u00e9\u20ac"`,
		"\U0001F600":   `"\ud83d\ude00"`,
		"bad\xffutf8":  `"bad\ufffdutf8"`,
		"":             `""`,
	} {
		if got := string(appendString(nil, in)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
		if got := string(appendString(nil, []byte(in))); got != want {
			t.Errorf("appendString([]byte %q) = %s, want %s", in, got, want)
		}
	}
	for f, want := range map[float64]string{60: "60", 50.5: "50.5", 1e-5: "1e-05", 1e16: "1e+16",
		0.1: "0.1", 1234567.25: "1234567.25", -2: "-2", 1e20: "1e+20"} {
		if got := string(appendNumber(nil, f)); got != want {
			t.Errorf("appendNumber(%v) = %s, want %s", f, got, want)
		}
	}
	if !strings.Contains(string(appendNumber(nil, 1.0/3)), "0.3333333333333333") {
		t.Error("shortest repr")
	}
}

// TestAcquireAfterSelfContainedRelease: a message marked self-contained is
// released without being cleared, and AcquireMessage still returns it
// cleared; an oversized scratch is dropped with every view into it.
func TestAcquireAfterSelfContainedRelease(t *testing.T) {
	for range 100 {
		m := AcquireMessage()
		if !reflect.DeepEqual(*m, Message{scratch: m.scratch[:0]}) || len(m.scratch) != 0 {
			t.Fatalf("acquired message is not reset: %+v", *m)
		}
		m.MarkSelfContained()
		m.NewID()
		m.Task = []byte("tasks.add")
		m.Body = m.Own([]byte(`[[2, 2], {}, {}]`))
		m.Priority = 9
		ReleaseMessage(m)
	}
	m := AcquireMessage()
	m.MarkSelfContained()
	m.Body = m.Own(make([]byte, maxPooledScratch+1))
	ReleaseMessage(m)
	if m.Body != nil || m.scratch != nil {
		t.Errorf("oversized scratch kept alive: len(Body) %d, cap(scratch) %d", len(m.Body), cap(m.scratch))
	}
}

// TestAcquireMessageToOverwrite: a self-contained message comes back with
// its exported fields as released and its own storage emptied; any other
// message comes back Reset. SetView and SetValue write only a change.
func TestAcquireMessageToOverwrite(t *testing.T) {
	reused := false
	for range 100 {
		m := AcquireMessageToOverwrite()
		if len(m.scratch) != 0 || m.bodyJSON != nil {
			t.Fatalf("own storage not emptied: len(scratch) %d, bodyJSON %q", len(m.scratch), m.bodyJSON)
		}
		if m.selfContained {
			reused = true
			if string(m.Task) != "tasks.add" || m.Priority != 9 || len(m.ID) != 36 {
				t.Fatalf("fields of a self-contained message changed: %+v", *m)
			}
		} else if !reflect.DeepEqual(*m, Message{scratch: m.scratch}) {
			t.Fatalf("message not marked self-contained is not reset: %+v", *m)
		}
		m.MarkSelfContained()
		m.NewID()
		m.Task = []byte("tasks.add")
		m.Priority = 9
		m.Body = m.Own([]byte(`[[1], {}, {}]`))
		m.ContentType = []byte(ContentTypeYAML) // BodyJSON stores a transcoded body
		if _, err := m.BodyJSON(0); err != nil {
			t.Fatal(err)
		}
		ReleaseMessage(m)
	}
	if !reused {
		t.Error("the pool never returned a released message")
	}

	b := []byte("abc")
	v := b[:2]
	SetView(&v, b[:2])
	if &v[0] != &b[0] || len(v) != 2 {
		t.Error("SetView changed an equal view")
	}
	SetView(&v, b[1:3])
	if &v[0] != &b[1] || len(v) != 2 {
		t.Error("SetView kept a view of other memory")
	}
	SetView(&v, b[1:2])
	if len(v) != 1 {
		t.Error("SetView kept a longer view")
	}
	SetView(&v, nil)
	if v != nil {
		t.Error("SetView kept a view instead of nil")
	}
	n := 3
	SetValue(&n, 4)
	if n != 4 {
		t.Error("SetValue")
	}
}

// TestTagSharesTheIDLine: a pooled message rebuilt in the same shape
// changes only its id's line, and a memory consumer writes Tag; with both
// on one cache line, one line moves between the cores per message.
// (A Message, 760 bytes, comes from the 768-byte size class, whose objects
// are 64-byte aligned, as are those of the classes around it.)
func TestTagSharesTheIDLine(t *testing.T) {
	var m Message
	tag, id := unsafe.Offsetof(m.Tag), unsafe.Offsetof(m.idBuf)
	if tag/64 != id/64 || (id+uintptr(len(m.idBuf))-1)/64 != id/64 {
		t.Errorf("Tag at %d and idBuf at %d-%d are not on one 64-byte line", tag, id, id+uintptr(len(m.idBuf))-1)
	}
}

// TestBodyJSONPlainNotCached: BodyJSON of an uncompressed JSON body
// returns the body and writes nothing to the message.
func TestBodyJSONPlainNotCached(t *testing.T) {
	m := &Message{Body: []byte(`[[], {}, {}]`), ContentType: []byte(ContentTypeJSON)}
	got, err := m.BodyJSON(0)
	if err != nil || &got[0] != &m.Body[0] {
		t.Fatalf("BodyJSON = %q, %v; want m.Body itself", got, err)
	}
	if m.bodyJSON != nil {
		t.Error("plain JSON body cached in the message")
	}
}

// TestHex8 checks the word-at-a-time hex of task ids against encoding/hex.
func TestHex8(t *testing.T) {
	t.Parallel()
	check := func(v uint32) {
		var got, want [8]byte
		binary.LittleEndian.PutUint64(got[:], hex8(v))
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], v)
		hex.Encode(want[:], b[:])
		if got != want {
			t.Fatalf("hex8(%#x) = %q, want %q", v, got[:], want[:])
		}
	}
	for _, v := range []uint32{0, 0xffffffff, 0x09090909, 0x0a0a0a0a, 0x9f9f9f9f, 0xa0a0a0a0, 0x12345678, 0xfedcba98} {
		check(v)
	}
	for range 100000 {
		check(rand.Uint32())
	}
}
