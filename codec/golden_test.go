package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The golden vectors in testdata/golden were captured from the real Python
// Celery 5.2.6 by testdata/golden/capture.py; manifest.json records what
// Python itself decoded from each one.

type goldenEntry struct {
	File       string          `json:"file"`
	Kind       string          `json:"kind"`
	Queue      string          `json:"queue"`
	Protocol   int             `json:"protocol"`
	Body       json.RawMessage `json:"body"`
	EtaUS      *int64          `json:"eta_us"`
	ExpiresUS  *int64          `json:"expires_us"`
	V1Headers  map[string]any  `json:"v1_headers"`
	TaskID     string          `json:"task_id"`
	DateDoneUS *int64          `json:"date_done_us"`
	GroupID    string          `json:"group_id"`
	Children   []string        `json:"children"`
	Value      json.RawMessage `json:"value"`
}

func loadManifest(t testing.TB) []goldenEntry {
	t.Helper()
	raw, err := os.ReadFile("testdata/golden/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []goldenEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) < 40 {
		t.Fatalf("manifest has %d entries; regenerate with capture.py", len(entries))
	}
	return entries
}

func goldenFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenEntries(t *testing.T, kind string) []goldenEntry {
	var out []goldenEntry
	for _, e := range loadManifest(t) {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s vectors", kind)
	}
	return out
}

// check collects field comparisons and reports every mismatch.
type check struct {
	t    *testing.T
	name string
}

func (c check) eq(field string, got, want any) {
	c.t.Helper()
	if !reflect.DeepEqual(got, want) {
		c.t.Errorf("%s: %s = %#v, want %#v", c.name, field, got, want)
	}
}

// jsonEq compares two JSON texts semantically.
func (c check) jsonEq(field string, got []byte, want any) {
	c.t.Helper()
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		c.t.Errorf("%s: %s is not JSON (%v): %s", c.name, field, err, got)
		return
	}
	w := want
	if raw, ok := want.(json.RawMessage); ok {
		if err := json.Unmarshal(raw, &w); err != nil {
			c.t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(g, w) {
		c.t.Errorf("%s: %s = %s, want %v", c.name, field, got, w)
	}
}

func usTime(us *int64) time.Time {
	if us == nil {
		return time.Time{}
	}
	return time.UnixMicro(*us).UTC()
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return v.(string)
}

// v2Headers lists the header keys with Message fields.
var v2Headers = []string{"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
	"retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin",
	"ignore_result", "compression", "redelivered"}

// checkHeaders compares m's header fields with a decoded headers map.
func checkHeaders(c check, m *Message, h map[string]any, e goldenEntry) {
	c.t.Helper()
	c.eq("Lang", string(m.Lang), str(h["lang"]))
	c.eq("Task", string(m.Task), str(h["task"]))
	c.eq("ID", string(m.ID), str(h["id"]))
	c.eq("Shadow", string(m.Shadow), str(h["shadow"]))
	c.eq("ETA", m.ETA, usTime(e.EtaUS))
	c.eq("Expires", m.Expires, usTime(e.ExpiresUS))
	c.eq("Group", string(m.Group), str(h["group"]))
	if gi, ok := h["group_index"].(float64); ok {
		c.eq("GroupIndex", [2]any{m.GroupIndex, m.HasGroupIndex}, [2]any{int(gi), true})
	} else {
		c.eq("HasGroupIndex", m.HasGroupIndex, false)
	}
	c.eq("Retries", float64(m.Retries), h["retries"])
	tl := h["timelimit"].([]any)
	want := TimeLimit{}
	if tl[0] != nil {
		want.Hard, want.HasHard = tl[0].(float64), true
	}
	if tl[1] != nil {
		want.Soft, want.HasSoft = tl[1].(float64), true
	}
	c.eq("TimeLimit", m.TimeLimit, want)
	c.eq("RootID", string(m.RootID), str(h["root_id"]))
	c.eq("ParentID", string(m.ParentID), str(h["parent_id"]))
	c.eq("ArgsRepr", string(m.ArgsRepr), str(h["argsrepr"]))
	c.eq("KwargsRepr", string(m.KwargsRepr), str(h["kwargsrepr"]))
	c.eq("Origin", string(m.Origin), str(h["origin"]))
	c.eq("IgnoreResult", m.IgnoreResult, h["ignore_result"] == true)
	c.eq("Compression", string(m.Compression), str(h["compression"]))
	extra := map[string]any{}
	for k, v := range h {
		if !slices.Contains(v2Headers, k) {
			extra[k] = v
		}
	}
	if len(extra) == 0 {
		c.eq("ExtraHeaders", string(m.ExtraHeaders), "")
	} else {
		c.jsonEq("ExtraHeaders", m.ExtraHeaders, extra)
	}
}

// checkV1 compares a converted protocol-1 message with Python's own
// conversion (proto1_to_proto2).
func checkV1(c check, m *Message, e goldenEntry) {
	c.t.Helper()
	h := e.V1Headers
	c.eq("Protocol", m.Protocol, 1)
	c.eq("Task", string(m.Task), str(h["task"]))
	c.eq("ID", string(m.ID), str(h["id"]))
	c.eq("Group", string(m.Group), str(h["group"]))
	c.eq("HasGroupIndex", m.HasGroupIndex, h["group_index"] != nil)
	c.eq("Retries", float64(m.Retries), h["retries"])
	c.eq("ETA", m.ETA, usTime(e.EtaUS))
	c.eq("Expires", m.Expires, usTime(e.ExpiresUS))
	c.eq("RootID", string(m.RootID), str(h["root_id"]))
	c.eq("ParentID", string(m.ParentID), str(h["parent_id"]))
	c.eq("Shadow", string(m.Shadow), str(h["shadow"]))
	tl := h["timelimit"].([]any)
	want := TimeLimit{}
	if tl[0] != nil {
		want.Hard, want.HasHard = tl[0].(float64), true
	}
	if tl[1] != nil {
		want.Soft, want.HasSoft = tl[1].(float64), true
	}
	c.eq("TimeLimit", m.TimeLimit, want)
	c.eq("ContentType", string(m.ContentType), ContentTypeJSON)
	c.eq("Compression", string(m.Compression), "")
	c.jsonEq("Body", m.Body, e.Body)
	if _, _, _, err := SplitJSONBody(m.Body); err != nil {
		c.t.Errorf("%s: converted body: %v", c.name, err)
	}
}

func checkBody(c check, m *Message, e goldenEntry) {
	c.t.Helper()
	body, err := m.BodyJSON(1 << 20)
	if err != nil {
		c.t.Errorf("%s: BodyJSON: %v", c.name, err)
		return
	}
	c.jsonEq("BodyJSON", body, e.Body)
	if _, _, _, err := SplitJSONBody(body); err != nil {
		c.t.Errorf("%s: SplitJSONBody: %v", c.name, err)
	}
}

func TestGoldenRedisMessages(t *testing.T) {
	t.Parallel()
	for _, e := range goldenEntries(t, "redis") {
		raw := goldenFile(t, e.File)
		c := check{t, e.File}
		var m Message
		if err := DecodeRedisEnvelope(raw, &m); err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		var env struct {
			Body            string         `json:"body"`
			ContentType     string         `json:"content-type"`
			ContentEncoding string         `json:"content-encoding"`
			Headers         map[string]any `json:"headers"`
			Properties      struct {
				CorrelationID string  `json:"correlation_id"`
				ReplyTo       string  `json:"reply_to"`
				DeliveryMode  uint8   `json:"delivery_mode"`
				Priority      uint8   `json:"priority"`
				Expiration    *string `json:"expiration"`
				DeliveryInfo  struct {
					Exchange    string `json:"exchange"`
					RoutingKey  string `json:"routing_key"`
					Redelivered bool   `json:"redelivered"`
				} `json:"delivery_info"`
				BodyEncoding string `json:"body_encoding"`
				DeliveryTag  string `json:"delivery_tag"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		p := env.Properties
		c.eq("CorrelationID", string(m.CorrelationID), p.CorrelationID)
		c.eq("ReplyTo", string(m.ReplyTo), p.ReplyTo)
		c.eq("DeliveryMode", m.DeliveryMode, p.DeliveryMode)
		c.eq("Priority", m.Priority, p.Priority)
		if p.Expiration != nil {
			c.eq("Expiration", fmt.Sprint(m.Expiration, m.HasExpiration), *p.Expiration+" true")
		} else {
			c.eq("HasExpiration", m.HasExpiration, false)
		}
		c.eq("Exchange", string(m.Exchange), p.DeliveryInfo.Exchange)
		c.eq("RoutingKey", string(m.RoutingKey), p.DeliveryInfo.RoutingKey)
		c.eq("Redelivered", m.Redelivered, p.DeliveryInfo.Redelivered || env.Headers["redelivered"] == true)
		c.eq("DeliveryTag", string(m.DeliveryTag), p.DeliveryTag)
		c.eq("Tag", m.Tag, uint64(0))
		c.eq("RoutingKey is the list", string(m.RoutingKey), strings.Split(e.Queue, "\x06\x16")[0])
		if e.Protocol == 1 {
			checkV1(c, &m, e)
			continue
		}
		c.eq("Protocol", m.Protocol, 2)
		c.eq("ContentType", string(m.ContentType), env.ContentType)
		c.eq("ContentEncoding", string(m.ContentEncoding), env.ContentEncoding)
		body, err := base64.StdEncoding.DecodeString(env.Body)
		if err != nil {
			t.Fatal(err)
		}
		c.eq("Body", string(m.Body), string(body))
		checkHeaders(c, &m, env.Headers, e)
		checkBody(c, &m, e)

		// Our encoder writes the same bytes back (kombu's key order and
		// Python's separators and escapes), except for properties we do
		// not model (replaced_task_nesting and origin on a retry).
		out := AppendRedisEnvelope(nil, &m)
		want := raw
		if strings.Contains(e.File, "retry") {
			want = bytes.Replace(want, []byte(`"replaced_task_nesting": 0, `), nil, 1)
			p := bytes.Index(want, []byte(`"properties"`))
			i := p + bytes.Index(want[p:], []byte(`"origin": "gen`))
			j := bytes.Index(want[i:], []byte(`", `))
			want = append(want[:i:i], want[i+j+3:]...)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s: re-encoded envelope differs\n got %s\nwant %s", e.File, out, want)
		}
	}
}

// Specific facts about particular vectors, independent of the generic
// comparison above (which trusts the captured JSON).
func TestGoldenRedisFacts(t *testing.T) {
	t.Parallel()
	decode := func(name string) *Message {
		t.Helper()
		var m Message
		if err := DecodeRedisEnvelope(goldenFile(t, "redis/"+name+".json"), &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return &m
	}
	body := func(m *Message) (string, string, string) {
		t.Helper()
		j, err := m.BodyJSON(0)
		if err != nil {
			t.Fatal(err)
		}
		a, k, e, err := SplitJSONBody(j)
		if err != nil {
			t.Fatal(err)
		}
		return string(a), string(k), string(e)
	}

	m := decode("plain")
	if string(m.Task) != "interop.add" || string(m.ID) != "00000000-0000-4000-8000-000000000001" ||
		string(m.RootID) != string(m.ID) || len(m.ParentID) != 0 || m.Retries != 0 ||
		m.TimeLimit != (TimeLimit{}) || string(m.Lang) != "py" || m.DeliveryMode != 2 || m.Priority != 0 ||
		string(m.RoutingKey) != "celery" || len(m.Exchange) != 0 || string(m.ArgsRepr) != "(2, 3)" {
		t.Errorf("plain: %+v", m)
	}
	if a, k, e := body(m); a != "[2, 3]" || k != "{}" || e != DefaultEmbed {
		t.Errorf("plain body: %s %s %s", a, k, e)
	}

	m = decode("options")
	if m.TimeLimit != (TimeLimit{Hard: 60, Soft: 50, HasHard: true, HasSoft: true}) || m.Priority != 5 ||
		m.Expiration != 600000 || !m.HasExpiration || m.ETA.IsZero() ||
		m.Expires.Sub(m.ETA) != 570*time.Second || string(m.KwargsRepr) != "{'y': 3}" {
		t.Errorf("options: %+v", m)
	}
	if a, k, _ := body(m); a != "[2]" || k != `{"y": 3}` {
		t.Errorf("options body: %s %s", a, k)
	}

	m = decode("eta")
	if !m.ETA.Equal(time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)) ||
		!m.Expires.Equal(time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC)) ||
		string(m.Shadow) != "shadowed.add" || !m.IgnoreResult || m.Priority != 9 ||
		m.TimeLimit != (TimeLimit{Hard: 1.5, HasHard: true}) ||
		string(m.ExtraHeaders) != `{"x-custom": "v", "x-nested": {"a": [1, 2.5, null, true]}}` {
		t.Errorf("eta: %+v extra=%s", m, m.ExtraHeaders)
	}

	m = decode("link")
	_, _, e := body(m)
	emb, err := DecodeEmbed([]byte(e))
	if err != nil || len(emb.Callbacks) != 1 || emb.Callbacks[0].Task != "interop.mul" ||
		string(emb.Callbacks[0].Args) != "[10]" || emb.Callbacks[0].Immutable ||
		len(emb.Errbacks) != 1 || !emb.Errbacks[0].Immutable || string(emb.Errbacks[0].Args) != `["errback"]` ||
		emb.Chain != nil || emb.Chord != nil {
		t.Errorf("link embed: %+v %v", emb, err)
	}

	m = decode("unicode")
	// Celery's saferepr keeps control characters as they are.
	if string(m.ArgsRepr) != "('h\u00e9llo \"q\"\n\t\\ /', '\U0001F600', '\x01')" {
		t.Errorf("unicode argsrepr: %q", m.ArgsRepr)
	}
	if a, k, _ := body(m); a != `["h\u00e9llo \"q\"\n\t\\ /", "\ud83d\ude00", "\u0001"]` || k != `{"k\u00e9": {"nested": "v"}}` {
		t.Errorf("unicode body: %s %s", a, k)
	}

	m = decode("chain")
	_, _, e = body(m)
	if emb, err = DecodeEmbed([]byte(e)); err != nil || len(emb.Chain) != 1 || emb.Chain[0].Task != "interop.mul" ||
		emb.Chain[0].Options.TaskID == "" || string(emb.Chain[0].Args) != "[4]" {
		t.Errorf("chain embed: %+v %v", emb, err)
	}

	for i := range 3 {
		m = decode(fmt.Sprintf("chord.%d", i))
		_, _, e = body(m)
		emb, err = DecodeEmbed([]byte(e))
		if len(m.Group) != 36 || !m.HasGroupIndex || m.GroupIndex != i || err != nil ||
			emb.Chord == nil || emb.Chord.Task != "interop.xsum" {
			t.Errorf("chord.%d: group=%s index=%d/%v embed=%+v err=%v", i, m.Group, m.GroupIndex, m.HasGroupIndex, emb, err)
		}
	}
	for i := range 3 {
		m = decode(fmt.Sprintf("group.%d", i))
		if string(m.Group) != "00000000-0000-4000-8000-000000000017" || m.HasGroupIndex {
			t.Errorf("group.%d: group=%s index=%v", i, m.Group, m.HasGroupIndex)
		}
	}

	m = decode("canvas")
	_, _, e = body(m)
	if emb, err = DecodeEmbed([]byte(e)); err != nil || len(emb.Chain) != 1 || emb.Chain[0].SubtaskType != "chord" {
		t.Fatalf("canvas embed: %+v %v", emb, err)
	}
	header, chordBody, err := emb.Chain[0].ChordParts()
	if err != nil || len(header) != 2 || header[1].Options.GroupIndex == nil || *header[1].Options.GroupIndex != 1 ||
		chordBody.SubtaskType != "chain" {
		t.Errorf("canvas chord: %+v %+v %v", header, chordBody, err)
	}
	if steps, err := chordBody.Tasks(); err != nil || len(steps) != 2 || steps[0].Task != "interop.xsum" || steps[1].Task != "interop.mul" {
		t.Errorf("canvas chord body: %+v %v", steps, err)
	}

	m = decode("retry")
	if m.Retries != 1 || string(m.ParentID) != string(m.ID) || string(m.RootID) != string(m.ID) ||
		m.ETA.IsZero() || string(m.RoutingKey) != "golden.retry" || string(m.Task) != "golden.retry" {
		t.Errorf("retry: %+v", m)
	}

	m = decode("restored")
	if !m.Redelivered || m.ETA.IsZero() || len(m.ExtraHeaders) != 0 {
		t.Errorf("restored: %+v", m)
	}

	for name, comp := range map[string]string{"zlib": "application/x-gzip", "bzip2": "application/x-bz2"} {
		if m = decode(name); string(m.Compression) != comp || string(m.ContentType) != ContentTypeJSON {
			t.Errorf("%s: compression %q", name, m.Compression)
		}
	}
	if m = decode("msgpack"); string(m.ContentType) != ContentTypeMsgpack || string(m.ContentEncoding) != "binary" {
		t.Errorf("msgpack: %q %q", m.ContentType, m.ContentEncoding)
	}
	if m = decode("yaml"); string(m.ContentType) != ContentTypeYAML {
		t.Errorf("yaml: %q", m.ContentType)
	}

	m = decode("v1")
	a, k, e := body(m)
	if m.Protocol != 1 || string(m.Task) != "interop.add" || a != "[1, 2]" || k != "{}" ||
		m.TimeLimit != (TimeLimit{Hard: 10, Soft: 5, HasHard: true, HasSoft: true}) || m.ETA.IsZero() ||
		m.Expiration != 600000 {
		t.Errorf("v1: %+v", m)
	}
	if emb, err = DecodeEmbed([]byte(e)); err != nil || len(emb.Callbacks) != 1 || len(emb.Errbacks) != 1 ||
		emb.Chain != nil || emb.Chord != nil {
		t.Errorf("v1 embed: %+v %v", emb, err)
	}
	m = decode("v1_group.1")
	if m.Protocol != 1 || string(m.Group) != "00000000-0000-4000-8000-00000000000b" {
		t.Errorf("v1_group: %+v", m)
	}
}

// amqpValue turns a typed capture value ({"I": 5}, {"S": "x"}...) into the
// Go value an AMQP client hands back for that field type. Nested tables
// use a named map type, as amqp091-go's Table is.
type amqpTable map[string]any

func amqpValue(t testing.TB, tagged map[string]any) any {
	t.Helper()
	for tag, v := range tagged {
		switch tag {
		case "S":
			return v.(string)
		case "t":
			return v.(bool)
		case "I":
			return int32(v.(float64))
		case "L":
			return int64(v.(float64))
		case "d":
			return v.(float64)
		case "V":
			return nil
		case "T":
			return time.Unix(int64(v.(float64)), 0)
		case "A":
			var arr []any
			for _, x := range v.([]any) {
				arr = append(arr, amqpValue(t, x.(map[string]any)))
			}
			return arr
		case "F":
			tab := amqpTable{}
			for k, x := range v.(map[string]any) {
				tab[k] = amqpValue(t, x.(map[string]any))
			}
			return tab
		}
	}
	t.Fatalf("bad tagged value %v", tagged)
	return nil
}

type amqpCapture struct {
	Properties struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		Priority        uint8  `json:"priority"`
		CorrelationID   string `json:"correlation_id"`
		ReplyTo         string `json:"reply_to"`
		Expiration      string `json:"expiration"`
	} `json:"properties"`
	Headers    map[string]map[string]any `json:"headers"`
	BodyBase64 []byte                    `json:"body_base64"`
}

func loadAMQP(t testing.TB, file string) (map[string]any, AMQPProperties, []byte) {
	t.Helper()
	var capt amqpCapture
	if err := json.Unmarshal(goldenFile(t, file), &capt); err != nil {
		t.Fatal(err)
	}
	headers := map[string]any{}
	for k, v := range capt.Headers {
		headers[k] = amqpValue(t, v)
	}
	p := capt.Properties
	return headers, AMQPProperties{ContentType: p.ContentType, ContentEncoding: p.ContentEncoding,
		CorrelationID: p.CorrelationID, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
		DeliveryMode: p.DeliveryMode, Priority: p.Priority}, capt.BodyBase64
}

func TestGoldenAMQPMessages(t *testing.T) {
	t.Parallel()
	for _, e := range goldenEntries(t, "amqp") {
		headers, props, body := loadAMQP(t, e.File)
		c := check{t, e.File}
		var m Message
		if err := DecodeAMQP(&m, headers, props, body); err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		c.eq("CorrelationID", string(m.CorrelationID), props.CorrelationID)
		c.eq("ReplyTo", string(m.ReplyTo), props.ReplyTo)
		c.eq("DeliveryMode", m.DeliveryMode, props.DeliveryMode)
		c.eq("Priority", m.Priority, props.Priority)
		if props.Expiration != "" {
			c.eq("Expiration", fmt.Sprint(m.Expiration), props.Expiration)
		}
		c.eq("HasExpiration", m.HasExpiration, props.Expiration != "")
		if e.Protocol == 1 {
			checkV1(c, &m, e)
			continue
		}
		c.eq("ContentType", string(m.ContentType), props.ContentType)
		c.eq("ContentEncoding", string(m.ContentEncoding), props.ContentEncoding)
		c.eq("Body", string(m.Body), string(body))
		// Python's view of the headers, as JSON values.
		plain, err := json.Marshal(headers)
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(plain, &h); err != nil {
			t.Fatal(err)
		}
		checkHeaders(c, &m, h, e)
		checkBody(c, &m, e)

		// Our headers map carries the same values with the same AMQP types.
		got := AMQPHeaders(&m, nil)
		for k, v := range headers {
			g := got[k]
			if tab, ok := v.(amqpTable); ok {
				v = map[string]any(tab)
			}
			if !reflect.DeepEqual(g, v) {
				t.Errorf("%s: AMQPHeaders[%q] = %#v (%T), want %#v (%T)", e.File, k, g, g, v, v)
			}
		}
		if len(got) != len(headers) {
			t.Errorf("%s: AMQPHeaders has %d keys, want %d", e.File, len(got), len(headers))
		}
		if p := AMQPPropertiesOf(&m); p != props {
			t.Errorf("%s: AMQPPropertiesOf = %+v, want %+v", e.File, p, props)
		}
	}
}

func TestGoldenAMQPFacts(t *testing.T) {
	t.Parallel()
	headers, props, body := loadAMQP(t, "amqp/options.json")
	var m Message
	if err := DecodeAMQP(&m, headers, props, body); err != nil {
		t.Fatal(err)
	}
	if m.Priority != 7 || m.Expiration != 120000 || string(m.Compression) != "application/x-gzip" ||
		m.TimeLimit != (TimeLimit{Hard: 60, Soft: 50.5, HasHard: true, HasSoft: true}) ||
		string(m.ExtraHeaders) != `{"x-custom": "v", "x-list": [1, "a", null], "x-map": {"k": 1.5}}` {
		t.Errorf("amqp options: %+v extra=%s", m, m.ExtraHeaders)
	}
	// The time limit keeps py-amqp's types: 60 was an int (I), 50.5 a float (d).
	tl := AMQPHeaders(&m, nil)["timelimit"].([]any)
	if tl[0] != int32(60) || tl[1] != 50.5 {
		t.Errorf("timelimit header = %#v", tl)
	}
}

func TestGoldenResults(t *testing.T) {
	t.Parallel()
	seen := map[State]bool{}
	for _, e := range goldenEntries(t, "result") {
		raw := goldenFile(t, e.File)
		c := check{t, e.File}
		var r Result
		if err := DecodeResultJSON(raw, &r); err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		var want map[string]any
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		seen[r.State] = true
		c.eq("State", r.State.String(), want["status"])
		c.eq("CustomState", string(r.CustomState), "")
		c.jsonEq("Result", appendRawOr(nil, r.Result, "null"), want["result"])
		c.eq("Traceback", string(r.Traceback), str(want["traceback"]))
		c.jsonEq("Children", r.Children, want["children"])
		c.eq("DateDone", r.DateDone, usTime(e.DateDoneUS))
		c.eq("TaskID", string(r.TaskID), e.TaskID)
		c.eq("TaskID", string(r.TaskID), str(want["task_id"]))
		c.eq("GroupID", string(r.GroupID), str(want["group_id"]))
		c.eq("ParentID", string(r.ParentID), str(want["parent_id"]))
		_, ext := want["name"]
		c.eq("Extended", r.Extended, ext)
		if ext {
			c.eq("Name", string(r.Name), str(want["name"]))
			c.jsonEq("Args", r.Args, want["args"])
			c.jsonEq("Kwargs", r.Kwargs, want["kwargs"])
			c.eq("Worker", string(r.Worker), str(want["worker"]))
			c.eq("Retries", float64(r.Retries), want["retries"])
			c.eq("Queue", string(r.Queue), str(want["queue"]))
		}
		c.eq("Ready", r.State.Ready(), want["date_done"] != nil)
		if out := AppendResultJSON(nil, &r); !bytes.Equal(out, raw) {
			t.Errorf("%s: re-encoded record differs\n got %s\nwant %s", e.File, out, raw)
		}
		children, err := DecodeChildren(r.Children)
		if err != nil {
			t.Errorf("%s: children: %v", e.File, err)
		}
		if out := AppendChildren(nil, children); !bytes.Equal(out, r.Children) {
			t.Errorf("%s: children re-encoded %s, want %s", e.File, out, r.Children)
		}
		if ex, ok := DecodeException(r.Result); ok != (r.State == StateFailure || r.State == StateRetry || r.State == StateRevoked) {
			t.Errorf("%s: DecodeException ok=%v", e.File, ok)
		} else if ok {
			w := want["result"].(map[string]any)
			c.eq("exc_type", string(ex.Type), w["exc_type"])
			c.eq("exc_module", string(ex.Module), w["exc_module"])
			c.jsonEq("exc_message", ex.Message, w["exc_message"])
		}
	}
	for _, s := range []State{StateSuccess, StateFailure, StateRetry, StateRevoked, StateStarted} {
		if !seen[s] {
			t.Errorf("no golden record in state %v", s)
		}
	}
}

func TestGoldenResultFacts(t *testing.T) {
	t.Parallel()
	decode := func(name string) *Result {
		var r Result
		if err := DecodeResultJSON(goldenFile(t, "results/"+name+".json"), &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return &r
	}
	r := decode("failure")
	ex, ok := DecodeException(r.Result)
	if r.State != StateFailure || !ok || string(ex.Type) != "ValueError" || string(ex.Module) != "builtins" ||
		string(ex.Message) != `["kaboom"]` || !strings.HasSuffix(string(r.Traceback), "ValueError: kaboom\n") ||
		!strings.HasPrefix(string(r.Traceback), "Traceback (most recent call last):\n  File \"") {
		t.Errorf("failure: %+v %+v", r, ex)
	}
	if out := AppendExceptionJSON(nil, "ValueError", "builtins", "kaboom"); string(out) != string(r.Result) {
		t.Errorf("AppendExceptionJSON = %s, want %s", out, r.Result)
	}
	r = decode("revoked")
	if out := AppendExceptionJSON(nil, "TaskRevokedError", "celery.exceptions", "expired"); string(out) != string(r.Result) || r.State != StateRevoked {
		t.Errorf("revoked: %s", r.Result)
	}
	r = decode("retry")
	if out := AppendExceptionJSONRaw(nil, "ValueError", "builtins", []byte(`["try again", 5]`)); string(out) != string(r.Result) ||
		!r.DateDone.IsZero() || r.State.Ready() {
		t.Errorf("retry: %s", r.Result)
	}
	children, _ := DecodeChildren(r.Children)
	if len(children) != 1 || string(children[0].ID) != string(r.TaskID) || children[0].IsGroup || children[0].Parent != nil {
		t.Errorf("retry children: %+v", children)
	}
	r = decode("started")
	if r.State != StateStarted || !strings.Contains(string(r.Result), `"hostname": "golden@localhost"`) || !r.DateDone.IsZero() {
		t.Errorf("started: %+v", r)
	}
	r = decode("extended")
	if !r.Extended || string(r.Name) != "interop.add" || string(r.Args) != "[2]" || string(r.Kwargs) != `{"y": 40}` ||
		string(r.Worker) != "golden@localhost" || string(r.Queue) != "celery" || string(r.Result) != "42" {
		t.Errorf("extended: %+v", r)
	}
	r = decode("group_member")
	if len(r.GroupID) != 36 || len(r.ParentID) != 0 {
		t.Errorf("group_member: %+v", r)
	}
	parent, child := decode("chain_parent"), decode("chain_child")
	children, _ = DecodeChildren(parent.Children)
	if len(children) != 1 || string(children[0].ID) != string(child.TaskID) || string(child.ParentID) != string(parent.TaskID) {
		t.Errorf("chain: parent children %+v, child parent %s", children, child.ParentID)
	}
}

func TestGoldenGroupRecord(t *testing.T) {
	t.Parallel()
	for _, e := range goldenEntries(t, "group") {
		raw := goldenFile(t, e.File)
		g, err := DecodeGroupRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if string(g.ID) != e.GroupID || !g.IsGroup || g.Parent != nil || len(g.Children) != len(e.Children) {
			t.Fatalf("group: %+v", g)
		}
		for i, c := range g.Children {
			if string(c.ID) != e.Children[i] || c.IsGroup || c.Parent != nil {
				t.Errorf("member %d: %+v, want %s", i, c, e.Children[i])
			}
		}
		if out := AppendGroupRecord(nil, &g); !bytes.Equal(out, raw) {
			t.Errorf("re-encoded %s, want %s", out, raw)
		}
	}
}

func TestGoldenSignatures(t *testing.T) {
	t.Parallel()
	for _, e := range goldenEntries(t, "signature") {
		raw := goldenFile(t, e.File)
		var s Signature
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		c := check{t, e.File}
		var want map[string]any
		if err := json.Unmarshal(e.Value, &want); err != nil {
			t.Fatal(err)
		}
		c.eq("Task", s.Task, want["task"])
		c.jsonEq("Args", s.Args, want["args"])
		c.jsonEq("Kwargs", s.Kwargs, want["kwargs"])
		c.eq("SubtaskType", s.SubtaskType, str(want["subtask_type"]))
		c.eq("Immutable", s.Immutable, want["immutable"])
		c.jsonEq("Options", s.Options.appendJSON(nil), want["options"])
		out, err := json.Marshal(s) // through encoding/json: compacted, same value
		if err != nil {
			t.Fatal(err)
		}
		c.jsonEq("json.Marshal", out, want)
		if out := s.AppendJSON(nil); !bytes.Equal(out, raw) {
			t.Errorf("%s: re-encoded\n got %s\nwant %s", e.File, out, raw)
		}
		switch s.SubtaskType {
		case "chain", "group":
			tasks, err := s.Tasks()
			if err != nil || len(tasks) != len(want["kwargs"].(map[string]any)["tasks"].([]any)) {
				t.Errorf("%s: Tasks() = %d, %v", e.File, len(tasks), err)
			}
		case "chord":
			header, body, err := s.ChordParts()
			if err != nil || len(header) == 0 || body.Task != "interop.xsum" {
				t.Errorf("%s: ChordParts() = %+v %+v %v", e.File, header, body, err)
			}
		}
	}
	var s Signature
	if err := json.Unmarshal(goldenFile(t, "signatures/options.json"), &s); err != nil {
		t.Fatal(err)
	}
	o := s.Options
	if o.Countdown == nil || *o.Countdown != 10 || string(o.Expires) != "60" || o.Priority == nil || *o.Priority != 3 ||
		o.Queue != "q1" || len(o.Link) != 1 || o.Link[0].Task != "interop.mul" || len(o.LinkError) != 1 ||
		!o.LinkError[0].Immutable || *o.TimeLimit != 30 || *o.SoftTimeLimit != 20.5 ||
		len(o.Extra) != 1 || o.Extra[0].Key != "custom_opt" || string(o.Extra[0].Value) != `{"a": 1}` {
		t.Errorf("options: %+v", o)
	}
	if err := json.Unmarshal(goldenFile(t, "signatures/immutable.json"), &s); err != nil {
		t.Fatal(err)
	}
	if o := s.Options; o.GroupID != "g-1" || *o.GroupIndex != 2 || o.TaskID != "t-1" || !s.Immutable {
		t.Errorf("immutable: %+v", s)
	}
	if err := json.Unmarshal(goldenFile(t, "signatures/chord_frozen.json"), &s); err != nil {
		t.Fatal(err)
	}
	header, _, err := s.ChordParts()
	if err != nil || len(header) != 1 || header[0].Options.Chord == nil || *header[0].Options.GroupIndex != 0 {
		t.Errorf("frozen chord header: %+v %v", header, err)
	}
}

func TestGoldenVectorsAreEnough(t *testing.T) {
	t.Parallel()
	kinds := map[string]int{}
	for _, e := range loadManifest(t) {
		kinds[e.Kind]++
		if _, err := os.Stat(filepath.Join("testdata/golden", e.File)); err != nil {
			t.Error(err)
		}
	}
	if kinds["redis"] < 15 || kinds["amqp"] < 4 || kinds["result"] < 8 || kinds["signature"] < 8 || kinds["group"] < 1 {
		t.Errorf("golden vectors per kind: %v", kinds)
	}
}
