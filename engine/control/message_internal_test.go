package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodePythonCommands reads commands captured from Celery 5.2.6's
// `celery inspect` on Redis.
func TestDecodePythonCommands(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/py_command_*.json")
	if len(files) == 0 {
		t.Fatal("no golden commands")
	}
	for _, f := range files {
		var m Message
		if err := decodeEnvelope(readGolden(t, filepath.Base(f)), &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if m.Exchange != "celery.pidbox" || m.RoutingKey != "" || m.Transient || m.Headers.Clock <= 0 ||
			!m.Headers.HasExpires || m.Headers.Expires < 1e9 || m.ContentType != "application/json" {
			t.Errorf("%s: %+v", f, m)
		}
		var body commandBody
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "py_command_"), ".json")
		if body.Method != want || body.Ticket == "" || body.ReplyTo == nil || body.ReplyTo.Exchange != "reply.celery.pidbox" {
			t.Errorf("%s: %+v", f, body)
		}
	}
}

var tagRE = regexp.MustCompile(`"delivery_tag": "[0-9a-f-]{36}"`)

// TestReplyEnvelopeMatchesPython re-encodes replies captured from a
// Python worker and compares the envelopes byte for byte (but for the
// per-publish delivery tag).
func TestReplyEnvelopeMatchesPython(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"py_reply_ping.json", "py_reply_stats.json", "py_reply_registered.json"} {
		py := readGolden(t, name)
		var m Message
		if err := decodeEnvelope(py, &m); err != nil {
			t.Fatal(err)
		}
		if !m.Transient || m.Headers.Ticket == "" || m.Headers.Clock <= 0 || m.Exchange != "reply.celery.pidbox" {
			t.Errorf("%s: %+v", name, m)
		}
		out := appendEnvelope(nil, &Message{Body: m.Body, Transient: true,
			Headers: Headers{Ticket: m.Headers.Ticket, Clock: m.Headers.Clock}}, m.Exchange, m.RoutingKey)
		norm := func(b []byte) string { return tagRE.ReplaceAllString(string(b), `"delivery_tag": "T"`) }
		if norm(out) != norm(py) {
			t.Errorf("%s:\n got %s\nwant %s", name, out, py)
		}
		var back Message
		if err := decodeEnvelope(out, &back); err != nil || !bytes.Equal(back.Body, m.Body) || back.Headers != m.Headers {
			t.Errorf("%s: round trip %+v, %v", name, back, err)
		}
	}
}

// TestCommandEnvelopeMatchesPython encodes a command the way the Client
// does and compares it with Celery's, up to the ticket, oid, clock and
// times.
func TestCommandEnvelopeMatchesPython(t *testing.T) {
	t.Parallel()
	py := readGolden(t, "py_command_ping.json")
	var pm Message
	if err := decodeEnvelope(py, &pm); err != nil {
		t.Fatal(err)
	}
	var pb commandBody
	if err := json.Unmarshal(pm.Body, &pb); err != nil {
		t.Fatal(err)
	}
	c := NewClient(NewMemoryBus(), ClientOptions{OID: pb.ReplyTo.RoutingKey})
	m, err := c.message(&Call{Method: "ping", Timeout: time.Second}, pb.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	m.Headers.Clock, m.Headers.Expires = pm.Headers.Clock, pm.Headers.Expires
	var ours, theirs map[string]any
	if err := json.Unmarshal(m.Body, &ours); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(pm.Body, &theirs); err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, ours), mustJSON(t, theirs); a != b {
		t.Errorf("command body:\n got %s\nwant %s", a, b)
	}
	// Same envelope once the bodies are the same bytes.
	m.Body = pm.Body
	out := appendEnvelope(nil, m, "celery.pidbox", "")
	norm := func(b []byte) string { return tagRE.ReplaceAllString(string(b), `"delivery_tag": "T"`) }
	if norm(out) != norm(py) {
		t.Errorf("command envelope:\n got %s\nwant %s", out, py)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v) // map keys sorted
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in string }{
		{"not json", `{"body": `},
		{"bad base64", `{"body": "!!", "properties": {"body_encoding": "base64"}}`},
		{"unknown encoding", `{"body": "x", "properties": {"body_encoding": "rot13"}}`},
		{"array", `[1, 2]`},
	} {
		var m Message
		if err := decodeEnvelope([]byte(tc.in), &m); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	var m Message
	if err := decodeEnvelope([]byte(`{"body": "{\"a\": 1}", "headers": {"clock": "x", "ticket": 5}}`), &m); err != nil ||
		string(m.Body) != `{"a": 1}` || m.Headers != (Headers{}) {
		t.Errorf("raw body, odd headers: %+v, %v", m, err)
	}
	if err := decodeEnvelope(make([]byte, maxEnvelope+1), &m); err == nil {
		t.Error("oversized envelope accepted")
	}
}

func TestAppendFloatAsPython(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0.0"}, {2, "2.0"}, {-3, "-3.0"}, {0.5, "0.5"}, {1795494751.8128982, "1795494751.8128982"},
		{1795494751, "1795494751.0"}, {1e16, "1e+16"}, {1.5e-05, "1.5e-05"}, {0.0001, "0.0001"},
		{123456789012345.6, "123456789012345.6"},
	} {
		if got := string(AppendFloat(nil, tc.in)); got != tc.want {
			t.Errorf("AppendFloat(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendStringEscapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"a\nb\tc\r\x01", `"a\nb\tc\r\u0001"`},
		{"é€", `"é€"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
	} {
		got := AppendString(nil, tc.in)
		if string(got) != tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	var c Clock
	if c.Forward() != 1 || c.Forward() != 2 {
		t.Fatal("forward")
	}
	if c.Adjust(10) != 11 || c.Adjust(3) != 12 || c.Value() != 12 {
		t.Fatalf("adjust: %d", c.Value())
	}
}

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"#", "task.multi", true}, {"#", "", true}, {"worker.#", "worker.heartbeat", true},
		{"worker.#", "task.multi", false}, {"task.*", "task.multi", true}, {"task.*", "task", false},
		{"*.multi", "task.multi", true}, {"#.multi", "a.b.multi", true}, {"a.b", "a.b", true}, {"a.b", "a.c", false},
	} {
		if got := topicMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v", tc.pattern, tc.key, got)
		}
	}
}

func TestRedisDB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want int
		bad  bool
	}{
		{"redis://127.0.0.1:6379/9", 9, false}, {"redis://h", 0, false}, {"redis://:pw@h:1/15?x=1", 15, false},
		{"redis+socket:///tmp/r.sock?virtual_host=3", 3, false}, {"unix:///tmp/r.sock?db=4", 4, false},
		{"redis://h/x", 0, true}, {"redis://h/-1", 0, true},
	} {
		got, err := RedisDB(tc.url)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("RedisDB(%q) = %d, %v", tc.url, got, err)
		}
	}
}

func TestMemoryBusRoutesEventsByKey(t *testing.T) {
	t.Parallel()
	b := NewMemoryBus()
	got := map[string][]string{}
	for _, key := range []string{"#", "worker.#", "task.multi"} {
		l, err := b.ListenEvents(context.Background(), key, func(m *Message) { got[key] = append(got[key], m.RoutingKey) })
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	for _, rk := range []string{"worker.online", "task.multi"} {
		if err := b.PublishEvent(context.Background(), rk, &Message{Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(got["#"], ",") != "worker.online,task.multi" || strings.Join(got["worker.#"], ",") != "worker.online" ||
		strings.Join(got["task.multi"], ",") != "task.multi" {
		t.Errorf("routed: %v", got)
	}
	b.Close()
	if err := b.PublishEvent(context.Background(), "x", &Message{}); err == nil {
		t.Error("publish after close")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	files, _ := filepath.Glob("testdata/py_*.json")
	for _, name := range files {
		f.Add(readGolden(f, filepath.Base(name)))
	}
	f.Add([]byte(`{"body": "` + base64.StdEncoding.EncodeToString([]byte(`{"method": "ping"}`)) + `", "properties": {"body_encoding": "base64"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := decodeEnvelope(data, &m); err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same message.
		out := appendEnvelope(nil, &m, m.Exchange, m.RoutingKey)
		var back Message
		if err := decodeEnvelope(out, &back); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v\n%s", err, out)
		}
		if !bytes.Equal(back.Body, m.Body) {
			t.Fatalf("body changed: %q -> %q", m.Body, back.Body)
		}
	})
}
