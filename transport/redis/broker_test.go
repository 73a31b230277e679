package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport/redis"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func consume(t *testing.T, b *redis.Broker, prefetch int, queues ...string) *redis.Consumer {
	t.Helper()
	c, err := b.Consume(context.Background(), queues, prefetch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*redis.Consumer)
}

func publish(t *testing.T, b *redis.Broker, msgs ...*codec.Message) {
	t.Helper()
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestPublishWritesKombuLists checks the list names per priority step and
// that each envelope decodes with a fresh delivery tag.
func TestPublishWritesKombuLists(t *testing.T) {
	t.Parallel()
	b, prefix := newBroker(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	m := transporttest.NewMessage("q", "p0", 0)
	oldTag := string(m.DeliveryTag)
	publish(t, b, m, transporttest.NewMessage("q", "p2", 2), transporttest.NewMessage("q", "p3", 3),
		transporttest.NewMessage("q", "p7", 7), transporttest.NewMessage("q", "p9", 9))
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"q", []string{"p2", "p0"}}, // LPUSH: newest on the left
		{"q\x06\x163", []string{"p3"}},
		{"q\x06\x166", []string{"p7"}},
		{"q\x06\x169", []string{"p9"}},
	} {
		raw, err := c.Do(ctx, c.B().Lrange().Key(prefix+tc.list).Start(0).Stop(-1).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range raw {
			var dm codec.Message
			if err := codec.DecodeRedisEnvelope([]byte(r), &dm); err != nil {
				t.Fatalf("%q: %v", r, err)
			}
			if string(dm.DeliveryTag) == oldTag || len(dm.DeliveryTag) != 36 {
				t.Errorf("delivery tag %q not fresh", dm.DeliveryTag)
			}
			if !strings.Contains(r, `"body_encoding": "base64"`) {
				t.Errorf("envelope without base64 body encoding: %s", r)
			}
			got = append(got, string(dm.ID))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("list %q = %v, want %v", tc.list, got, tc.want)
		}
	}
	if n, err := b.QueueLen(ctx, "q"); err != nil || n != 5 {
		t.Fatalf("QueueLen = %d, %v", n, err)
	}
	if n := b.Purge("q"); n != 5 {
		t.Fatalf("Purge = %d, want 5", n)
	}
	if n := b.Len("q"); n != 0 {
		t.Fatalf("Len after purge = %d", n)
	}
}

// TestUnackedLayoutIsKombus checks what a fetch records: the triple
// [envelope, "", queue] under the delivery tag, and a score of now.
func TestUnackedLayoutIsKombus(t *testing.T) {
	t.Parallel()
	b, prefix := newBroker(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	publish(t, b, transporttest.NewMessage("lay", "l-1", 0))
	raw, err := c.Do(ctx, c.B().Lindex().Key(prefix+"lay").Index(0).Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	cons := consume(t, b, 0, "lay")
	got := transporttest.FetchN(t, cons, 1, 5*time.Second)
	tag := string(got[0].DeliveryTag)
	trip, err := c.Do(ctx, c.B().Hget().Key(prefix+"unacked").Field(tag).Build()).ToString()
	if err != nil {
		t.Fatalf("HGET unacked %s: %v", tag, err)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(trip), &parts); err != nil || len(parts) != 3 {
		t.Fatalf("triple %q: %v", trip, err)
	}
	if string(parts[0]) != raw || string(parts[1]) != `""` || string(parts[2]) != `"lay"` {
		t.Fatalf("triple = %s, want [%s, \"\", \"lay\"]", trip, raw)
	}
	score, err := c.Do(ctx, c.B().Zscore().Key(prefix+"unacked_index").Member(tag).Build()).AsFloat64()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.UnixMicro(int64(score * 1e6))); d < -time.Second || d > time.Minute {
		t.Fatalf("score %f is %v from now", score, d)
	}
	if err := cons.Ack(got...); err != nil {
		t.Fatal(err)
	}
	transporttest.Release(got)
	// Acks travel asynchronously (with the next fetch, or a millisecond later).
	// The index keeps one member of its own, at score -1 (see doc.go).
	eventually(t, "the ack to reach Redis", func() bool {
		n, err1 := c.Do(ctx, c.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
		z, err2 := c.Do(ctx, c.B().Zcount().Key(prefix+"unacked_index").Min("0").Max("+inf").Build()).AsInt64()
		return err1 == nil && err2 == nil && n == 0 && z == 0
	})
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pythonTriple is how kombu's QoS.append stores a message it delivered:
// json.dumps([payload, exchange, routing_key]) with Python's separators
// (and Python's re-serialisation of the envelope).
func pythonTriple(t *testing.T, env []byte, exchange, rk string) string {
	t.Helper()
	var payload map[string]any
	if err := json.Unmarshal(env, &payload); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal([]any{payload, exchange, rk})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestRestoresWhatADeadPythonWorkerHeld puts entries into the unacked
// bookkeeping as a Python worker that then died would have (old score,
// kombu's triple with exchange "celery"), and checks that our consumer's
// restore brings them back, flagged redelivered, to the bound queue.
func TestRestoresWhatADeadPythonWorkerHeld(t *testing.T) {
	t.Parallel()
	b, prefix := newBroker(t, redis.WithVisibilityTimeout(time.Second))
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	if err := b.Bind(ctx, "dead-ex", "dead-rk", "dead"); err != nil {
		t.Fatal(err)
	}
	old := strconv.FormatFloat(float64(time.Now().Add(-time.Hour).UnixMicro())/1e6, 'f', 6, 64)
	for i, exchange := range []string{"", "dead-ex"} {
		m := transporttest.NewMessage("dead", "py-"+strconv.Itoa(i), 0)
		env := codec.AppendRedisEnvelope(nil, m)
		rk := "dead"
		if exchange != "" {
			rk = "dead-rk"
		}
		trip := pythonTriple(t, env, exchange, rk)
		tag := string(m.DeliveryTag)
		codec.ReleaseMessage(m)
		for _, cmd := range []rueidis.Completed{
			c.B().Hset().Key(prefix+"unacked").FieldValue().FieldValue(tag, trip).Build(),
			c.B().Zadd().Key(prefix+"unacked_index").ScoreMember().ScoreMember(mustFloat(old), tag).Build(),
		} {
			if err := c.Do(ctx, cmd).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cons := consume(t, b, 0, "dead") // its restorer runs at once
	got := transporttest.FetchN(t, cons, 2, 5*time.Second)
	slices.SortFunc(got, func(a, b *codec.Message) int { return strings.Compare(string(a.ID), string(b.ID)) })
	if !slices.Equal(transporttest.IDs(got), []string{"py-0", "py-1"}) {
		t.Fatalf("restored %v", transporttest.IDs(got))
	}
	for _, m := range got {
		if !m.Redelivered {
			t.Errorf("%s not flagged redelivered", m.ID)
		}
	}
	cons.Ack(got...)
	transporttest.Release(got)
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

// TestHeldMessagesAreNotRestored is the ETA guard: a consumer holding
// messages much longer than the visibility timeout keeps them, however
// often others run restore_visible; once it is gone they come back.
func TestHeldMessagesAreNotRestored(t *testing.T) {
	t.Parallel()
	vt := time.Second
	b, _ := newBroker(t, redis.WithVisibilityTimeout(vt))
	publish(t, b, transporttest.NewMessage("eta", "e-1", 0), transporttest.NewMessage("eta", "e-2", 0))
	holder, err := b.Consume(context.Background(), []string{"eta"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	held := transporttest.FetchN(t, holder, 2, 5*time.Second)
	other := consume(t, b, 0, "eta")
	deadline := time.Now().Add(3 * vt)
	for time.Now().Before(deadline) {
		if n, err := b.RestoreVisible(context.Background()); err != nil || n != 0 {
			t.Fatalf("RestoreVisible restored %d messages held by a live consumer (err %v)", n, err)
		}
		transporttest.FetchNone(t, other, vt/4)
	}
	// The holder "dies" without closing: stop its heartbeat by closing
	// only after forgetting what it holds is not possible from outside, so
	// acknowledge one and let Close requeue the other.
	if err := holder.Ack(held[0]); err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	back := transporttest.FetchN(t, other, 1, 5*time.Second)
	if string(back[0].ID) != string(held[1].ID) || !back[0].Redelivered {
		t.Fatalf("got %s redelivered=%v, want %s redelivered", back[0].ID, back[0].Redelivered, held[1].ID)
	}
	other.Ack(back...)
	transporttest.Release(back)
	transporttest.Release(held)
}

// TestCloseRequeuesOldestFirst checks that Close puts held messages back
// at the front of the queue in their original order.
func TestCloseRequeuesOldestFirst(t *testing.T) {
	t.Parallel()
	b, _ := newBroker(t)
	for i := range 5 {
		publish(t, b, transporttest.NewMessage("order", "o-"+strconv.Itoa(i), 0))
	}
	c1, err := b.Consume(context.Background(), []string{"order"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := transporttest.FetchN(t, c1, 3, 5*time.Second)
	publish(t, b, transporttest.NewMessage("order", "o-5", 0))
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	transporttest.Release(got)
	c2 := consume(t, b, 0, "order")
	again := transporttest.FetchN(t, c2, 6, 5*time.Second)
	want := []string{"o-0", "o-1", "o-2", "o-3", "o-4", "o-5"}
	if !slices.Equal(transporttest.IDs(again), want) {
		t.Fatalf("order after close %v, want %v", transporttest.IDs(again), want)
	}
	for i, m := range again {
		if m.Redelivered != (i < 3) {
			t.Errorf("%s redelivered=%v", m.ID, m.Redelivered)
		}
	}
	c2.Ack(again...)
	transporttest.Release(again)
}

// TestGarbageIsDroppedAndLogged feeds envelopes that cannot be decoded
// ahead of good ones: the consumer logs and drops them and goes on.
func TestGarbageIsDroppedAndLogged(t *testing.T) {
	t.Parallel()
	var logBuf interoptest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	b, prefix := newBroker(t, redis.WithLogger(log))
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	garbage := []string{
		"not json at all",
		`{"body": "e30=", "headers": {"task": "x", "id": "1"}}`, // no properties/delivery_tag
		`{"body": "!!!notbase64!!!", "content-type": "application/json", "headers": {"task": "t", "id": "2"}, "properties": {"delivery_tag": "bad-b64", "body_encoding": "base64"}}`,
		`{"body": "W1tdLCB7fSwge31d", "content-type": "application/json", "headers": {"id": "3"}, "properties": {"delivery_tag": "no-task", "body_encoding": "base64"}}`,
		`[1, 2, 3]`,
		``,
	}
	for _, g := range garbage {
		if err := c.Do(ctx, c.B().Lpush().Key(prefix+"junk").Element(g).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, transporttest.NewMessage("junk", "good-1", 0), transporttest.NewMessage("junk", "good-2", 0))
	cons := consume(t, b, 0, "junk")
	got := transporttest.FetchN(t, cons, 2, 5*time.Second)
	if !slices.Equal(transporttest.IDs(got), []string{"good-1", "good-2"}) {
		t.Fatalf("got %v", transporttest.IDs(got))
	}
	eventually(t, "undecodable messages to leave the unacked bookkeeping", func() bool {
		n, _ := c.Do(ctx, c.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
		return n == 2
	})
	cons.Ack(got...)
	transporttest.Release(got)
	if k := strings.Count(logBuf.String(), "does not decode"); k != len(garbage) {
		t.Fatalf("logged %d bad messages, want %d:\n%s", k, len(garbage), logBuf.String())
	}
}

// TestRequeueMarksKombuFlags checks the text surgery of a restore on
// envelopes written by other producers: compact JSON, empty headers,
// escapes and look-alike keys inside strings, an already redelivered one.
func TestRequeueMarksKombuFlags(t *testing.T) {
	t.Parallel()
	b, prefix := newBroker(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	body := `W1tdLCB7fSwge31d` // [[], {}, {}]
	envs := []string{
		`{"body":"` + body + `","content-type":"application/json","content-encoding":"utf-8","headers":{"task":"t","id":"s-1","note":"\"headers\": {\"x\"}"},"properties":{"delivery_info":{"exchange":"","routing_key":"surg"},"body_encoding":"base64","delivery_tag":"tag-1"}}`,
		`{"body": "` + body + `", "headers": {"task": "t", "id": "s-2", "redelivered": true}, "content-type": "application/json", "properties": {"delivery_tag": "tag-2", "body_encoding": "base64", "delivery_info": {}}}`,
		`{"properties": {"delivery_info": {"routing_key": "surg", "exchange": ""}, "priority": 0, "body_encoding": "base64", "delivery_tag": "tag-3"}, "headers": {"id": "s-3", "task": "t\u00e9\"}"}, "body": "` + body + `", "content-type": "application/json"}`,
	}
	for _, e := range envs {
		if err := c.Do(ctx, c.B().Lpush().Key(prefix+"surg").Element(e).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	cons := consume(t, b, 0, "surg")
	got := transporttest.FetchN(t, cons, 3, 5*time.Second)
	if err := cons.Reject(true, got...); err != nil {
		t.Fatal(err)
	}
	transporttest.Release(got)
	// The consumer fetches them again at once: read the requeued envelopes
	// from the unacked triples that fetch recorded.
	again := transporttest.FetchN(t, cons, 3, 5*time.Second)
	var raw []string
	for _, m := range again {
		if !m.Redelivered {
			t.Errorf("%s not redelivered", m.ID)
		}
		trip, err := c.Do(ctx, c.B().Hget().Key(prefix+"unacked").Field(string(m.DeliveryTag)).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		var parts []json.RawMessage
		if err := json.Unmarshal([]byte(trip), &parts); err != nil || len(parts) != 3 {
			t.Fatalf("triple %q: %v", trip, err)
		}
		raw = append(raw, string(parts[0]))
	}
	for _, r := range raw {
		var env struct {
			Headers    map[string]any `json:"headers"`
			Properties struct {
				DeliveryInfo map[string]any `json:"delivery_info"`
			} `json:"properties"`
		}
		if err := json.Unmarshal([]byte(r), &env); err != nil {
			t.Fatalf("requeued envelope is not JSON: %v\n%s", err, r)
		}
		if env.Headers["redelivered"] != true || env.Properties.DeliveryInfo["redelivered"] != true {
			t.Errorf("flags missing: %s", r)
		}
		if strings.Count(r, `"redelivered"`) != 2 {
			t.Errorf("want exactly two redelivered keys: %s", r)
		}
	}
	// Nothing but the flags changed.
	want := []string{
		strings.NewReplacer(`"headers":{`, `"headers":{"redelivered": true, `,
			`"delivery_info":{`, `"delivery_info":{"redelivered": true, `).Replace(envs[0]),
		strings.Replace(envs[1], `"delivery_info": {}`, `"delivery_info": {"redelivered": true}`, 1),
		strings.NewReplacer(`"headers": {`, `"headers": {"redelivered": true, `,
			`"delivery_info": {`, `"delivery_info": {"redelivered": true, `).Replace(envs[2]),
	}
	for _, r := range raw {
		if !slices.Contains(want, r) {
			t.Errorf("requeued envelope changed beyond the flags:\n%s\nwant one of\n%s", r, strings.Join(want, "\n"))
		}
	}
	cons.Ack(again...)
	transporttest.Release(again)
}

// TestExchangeRouting publishes through kombu binding sets.
func TestExchangeRouting(t *testing.T) {
	t.Parallel()
	b, _ := newBroker(t)
	ctx := ctxT(t, 10*time.Second)
	for _, bind := range [][3]string{{"ex", "k1", "qa"}, {"ex", "k1", "qb"}, {"ex", "k2", "qc"}, {"tx", "news.#", "qd"}} {
		if err := b.Bind(ctx, bind[0], bind[1], bind[2]); err != nil {
			t.Fatal(err)
		}
	}
	send := func(ex, rk, id string) {
		m := transporttest.NewMessage(rk, id, 0)
		m.Exchange = []byte(ex)
		publish(t, b, m)
	}
	send("ex", "k1", "to-ab")
	send("ex", "k2", "to-c")
	send("tx", "news.sport.tennis", "to-d")
	send("ex", "unbound", "to-unbound")
	for q, want := range map[string]int{"qa": 1, "qb": 1, "qc": 1, "qd": 1, "unbound": 1} {
		if n, err := b.QueueLen(ctx, q); err != nil || n != want {
			t.Errorf("queue %s has %d messages (err %v), want %d", q, n, err, want)
		}
	}
}

// TestRoundRobinAndOrderStrategies checks kombu's queue order options.
func TestRoundRobinAndOrderStrategies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		strategy string
		first    string // queue whose messages fill a small batch first
	}{
		{"priority", "zq"},
		{"sorted", "aq"},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			t.Parallel()
			b, _ := newBroker(t, redis.WithQueueOrderStrategy(tc.strategy))
			for i := range 4 {
				publish(t, b, transporttest.NewMessage("zq", "z-"+strconv.Itoa(i), 0),
					transporttest.NewMessage("aq", "a-"+strconv.Itoa(i), 0))
			}
			cons := consume(t, b, 0, "zq", "aq")
			got := transporttest.FetchN(t, cons, 4, 5*time.Second)
			for _, m := range got {
				if string(m.RoutingKey) != tc.first {
					t.Fatalf("%s: batch %v mixes queues, want all from %s", tc.strategy, transporttest.IDs(got), tc.first)
				}
			}
			rest := transporttest.FetchN(t, cons, 4, 5*time.Second)
			cons.Ack(append(got, rest...)...)
			transporttest.Release(got)
			transporttest.Release(rest)
		})
	}
}

// TestPrefetchRaisedForHeldTasks mirrors how the worker raises the bound
// for ETA tasks it holds.
func TestPrefetchRaisedForHeldTasks(t *testing.T) {
	t.Parallel()
	b, _ := newBroker(t)
	for i := range 6 {
		publish(t, b, transporttest.NewMessage("pf", fmt.Sprint("pf-", i), 0))
	}
	cons := consume(t, b, 2, "pf")
	got := transporttest.FetchN(t, cons, 2, 5*time.Second)
	transporttest.FetchNone(t, cons, 100*time.Millisecond)
	if cons.Held() != 2 {
		t.Fatalf("Held = %d", cons.Held())
	}
	cons.SetPrefetch(4)
	more := transporttest.FetchN(t, cons, 2, 5*time.Second)
	transporttest.FetchNone(t, cons, 100*time.Millisecond)
	all := append(got, more...)
	if err := cons.Ack(all...); err != nil {
		t.Fatal(err)
	}
	if err := cons.Ack(all[0]); err == nil {
		t.Fatal("second ack of the same message succeeded")
	}
	transporttest.Release(all)
}
