package codec

import (
	"encoding/json"
	"testing"
	"time"
)

// jsonEnvelope is the Redis envelope as an encoding/json struct with the
// same fields our hand-written codec reads and writes, to show the ratio.
type jsonEnvelope struct {
	Body            []byte      `json:"body"` // encoding/json base64s []byte
	ContentEncoding string      `json:"content-encoding"`
	ContentType     string      `json:"content-type"`
	Headers         jsonHeaders `json:"headers"`
	Properties      struct {
		CorrelationID string `json:"correlation_id"`
		ReplyTo       string `json:"reply_to"`
		DeliveryMode  uint8  `json:"delivery_mode"`
		Expiration    string `json:"expiration,omitempty"`
		DeliveryInfo  struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"delivery_info"`
		Priority     uint8  `json:"priority"`
		BodyEncoding string `json:"body_encoding"`
		DeliveryTag  string `json:"delivery_tag"`
	} `json:"properties"`
}

type jsonHeaders struct {
	Lang         string          `json:"lang"`
	Task         string          `json:"task"`
	ID           string          `json:"id"`
	Shadow       *string         `json:"shadow"`
	ETA          *time.Time      `json:"eta"`
	Expires      *time.Time      `json:"expires"`
	Group        *string         `json:"group"`
	GroupIndex   *int            `json:"group_index"`
	Retries      int             `json:"retries"`
	TimeLimit    [2]*float64     `json:"timelimit"`
	RootID       string          `json:"root_id"`
	ParentID     *string         `json:"parent_id"`
	ArgsRepr     string          `json:"argsrepr"`
	KwargsRepr   string          `json:"kwargsrepr"`
	Origin       string          `json:"origin"`
	IgnoreResult bool            `json:"ignore_result"`
	Extra        json.RawMessage `json:"-"`
}

func toJSONEnvelope(m *Message) *jsonEnvelope {
	s := func(b []byte) *string {
		if len(b) == 0 {
			return nil
		}
		v := string(b)
		return &v
	}
	e := &jsonEnvelope{Body: m.Body, ContentEncoding: string(m.ContentEncoding), ContentType: string(m.ContentType)}
	h := &e.Headers
	h.Lang, h.Task, h.ID, h.Shadow = string(m.Lang), string(m.Task), string(m.ID), s(m.Shadow)
	h.ETA, h.Expires = &m.ETA, &m.Expires
	h.Group, h.GroupIndex, h.Retries = s(m.Group), &m.GroupIndex, m.Retries
	h.TimeLimit = [2]*float64{&m.TimeLimit.Hard, &m.TimeLimit.Soft}
	h.RootID, h.ParentID, h.ArgsRepr, h.KwargsRepr = string(m.RootID), s(m.ParentID), string(m.ArgsRepr), string(m.KwargsRepr)
	h.Origin, h.IgnoreResult = string(m.Origin), m.IgnoreResult
	p := &e.Properties
	p.CorrelationID, p.ReplyTo, p.DeliveryMode, p.Expiration = string(m.CorrelationID), string(m.ReplyTo), m.DeliveryMode, "600000"
	p.DeliveryInfo.Exchange, p.DeliveryInfo.RoutingKey = string(m.Exchange), string(m.RoutingKey)
	p.Priority, p.BodyEncoding, p.DeliveryTag = m.Priority, "base64", string(m.DeliveryTag)
	return e
}

func BenchmarkAppendRedisEnvelope(b *testing.B) {
	m := dispatchMessage()
	buf := AppendRedisEnvelope(nil, m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRedisEnvelope(buf[:0], m)
	}
}

func BenchmarkEncodingJSONMarshalEnvelope(b *testing.B) {
	e := toJSONEnvelope(dispatchMessage())
	out, _ := json.Marshal(e)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRedisEnvelope(b *testing.B) {
	src := AppendRedisEnvelope(nil, dispatchMessage())
	m := AcquireMessage()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRedisEnvelope(src, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRedisEnvelopeGoldenPlain(b *testing.B) {
	src := goldenFile(b, "redis/plain.json")
	m := AcquireMessage()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRedisEnvelope(src, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodingJSONUnmarshalEnvelope(b *testing.B) {
	src, _ := json.Marshal(toJSONEnvelope(dispatchMessage()))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		var e jsonEnvelope
		if err := json.Unmarshal(src, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitJSONBody(b *testing.B) {
	var m Message
	if err := DecodeRedisEnvelope(goldenFile(b, "redis/link.json"), &m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := SplitJSONBody(m.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodingJSONUnmarshalBody(b *testing.B) {
	var m Message
	if err := DecodeRedisEnvelope(goldenFile(b, "redis/link.json"), &m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		var parts [3]json.RawMessage
		if err := json.Unmarshal(m.Body, &parts); err != nil {
			b.Fatal(err)
		}
	}
}

type jsonResult struct {
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
	Children  json.RawMessage `json:"children"`
	DateDone  *string         `json:"date_done"`
	TaskID    string          `json:"task_id"`
}

func benchResult() *Result {
	return &Result{State: StateSuccess, Result: []byte(`{"sum": 5, "parts": [2, 3]}`), TaskID: []byte("00000000-0000-4000-8000-000000000010"),
		DateDone: time.Date(2026, 11, 24, 3, 41, 20, 907056000, time.UTC)}
}

func BenchmarkAppendResultJSON(b *testing.B) {
	r := benchResult()
	buf := AppendResultJSON(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResultJSON(buf[:0], r)
	}
}

func BenchmarkEncodingJSONMarshalResult(b *testing.B) {
	r := benchResult()
	dd := string(AppendDateDone(nil, r.DateDone))
	jr := &jsonResult{Status: "SUCCESS", Result: r.Result, Children: json.RawMessage("[]"), DateDone: &dd, TaskID: string(r.TaskID)}
	out, _ := json.Marshal(jr)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(jr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResultJSON(b *testing.B) {
	src := goldenFile(b, "results/failure.json")
	var r Result
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeResultJSON(src, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodingJSONUnmarshalResult(b *testing.B) {
	src := goldenFile(b, "results/failure.json")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		var r jsonResult
		if err := json.Unmarshal(src, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseISOTime(b *testing.B) {
	s := []byte("2026-11-24T02:14:43.676182+00:00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseISOTime(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTimeParseRFC3339(b *testing.B) {
	s := "2026-11-24T02:14:43.676182+00:00"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendISOTime(b *testing.B) {
	t := time.Date(2026, 11, 24, 2, 14, 43, 676182000, time.UTC)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendISOTime(buf[:0], t)
	}
}

func BenchmarkTimeAppendFormat(b *testing.B) {
	t := time.Date(2026, 11, 24, 2, 14, 43, 676182000, time.UTC)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = t.AppendFormat(buf[:0], "2006-01-02T15:04:05.000000-07:00")
	}
}

func BenchmarkSignatureUnmarshal(b *testing.B) {
	src := goldenFile(b, "signatures/chord_frozen.json")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		var s Signature
		if err := s.UnmarshalJSON(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodingJSONUnmarshalSignatureMap(b *testing.B) {
	src := goldenFile(b, "signatures/chord_frozen.json")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		var s map[string]any
		if err := json.Unmarshal(src, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewID: a task id per message is on the producer's hot path.
func BenchmarkNewID(b *testing.B) {
	m := AcquireMessage()
	defer ReleaseMessage(m)
	for range b.N {
		m.NewID()
	}
}

// BenchmarkAcquireReleaseMessage: the pool round trip of every message.
func BenchmarkAcquireReleaseMessage(b *testing.B) {
	for range b.N {
		m := AcquireMessage()
		m.NewID()
		ReleaseMessage(m)
	}
}

// BenchmarkAcquireReleaseParallel: every processor acquires and releases
// messages of its own, as producers that release what they publish do;
// per-processor pooling keeps it from moving lines between cores.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ReleaseMessage(AcquireMessage())
		}
	})
}
