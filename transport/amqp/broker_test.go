package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
)

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "amqp://guest:guest@localhost:5672//", want: "amqp://guest:guest@localhost:5672//"},
		{in: "pyamqp://u:p@h/vh", want: "amqp://u:p@h/vh"},
		{in: "amqps://u:p@h:5671/vh?heartbeat=30", want: "amqps://u:p@h:5671/vh?heartbeat=30"},
		{in: "pyamqps://h", want: "amqps://h"},
		{in: "redis://localhost:6379/0", bad: true},
		{in: "amqp://h/?heartbeat=x", bad: true},
		{in: "amqp://h:notaport/", bad: true},
		{in: "::", bad: true},
	}
	for _, tc := range tests {
		got, err := normalizeURL(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("%q: err %v, want ErrBadURL", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestVhostFromURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"amqp://h//":      "/",
		"amqp://h/":       "/",
		"amqp://h":        "/",
		"amqp://h/vh":     "vh",
		"amqp://h/%2fvh":  "/vh",
		"pyamqp://h/a.b1": "a.b1",
	} {
		n, err := normalizeURL(in)
		if err != nil {
			t.Fatal(err)
		}
		u, err := amqp091.ParseURI(n)
		if err != nil || u.Vhost != want {
			t.Errorf("%s: vhost %q (%v), want %q", in, u.Vhost, err, want)
		}
	}
}

// captureLog counts the records logged at each level.
type captureLog struct {
	mu   sync.Mutex
	msgs []string
}

func (c *captureLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *captureLog) WithGroup(string) slog.Handler            { return c }
func (c *captureLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (c *captureLog) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// garbage are deliveries that are not Celery task messages.
var garbage = []amqp091.Publishing{
	{Body: []byte("not json at all")},
	{ContentType: "application/json", Body: []byte(`{"hello": "world"}`)},
	{Headers: amqp091.Table{"task": "x.y", "id": "g-1", "retries": "three"}, Body: []byte(`[[], {}, {}]`)},
	{Headers: amqp091.Table{"task": "x.y"}, Body: []byte(`[[], {}, {}]`)}, // no id
	{Headers: amqp091.Table{"task": "x.y", "id": "g-2", "eta": "yesterday"}, Body: []byte(`[[], {}, {}]`)},
}

func publishRaw(t *testing.T, b *Broker, queue string, pubs ...amqp091.Publishing) {
	t.Helper()
	items := make([]rawPub, len(pubs))
	for i, p := range pubs {
		items[i] = rawPub{key: queue, mandatory: true, pub: p}
	}
	if err := b.pub.send(t.Context(), &rawSource{items: items}); err != nil {
		t.Fatal(err)
	}
}

// TestGarbageRejected: deliveries that are not task messages are rejected
// without requeue and logged; the valid message between them arrives and
// nothing comes back.
func TestGarbageRejected(t *testing.T) {
	t.Parallel()
	queue := testQueue(t, "garbage")
	logs := &captureLog{}
	b := newTestBroker(t, WithLogger(slog.New(logs)))
	if err := b.Declare(t.Context(), TaskQueue(queue, 0)); err != nil {
		t.Fatal(err)
	}
	publishRaw(t, b, queue, garbage[:3]...)
	if err := b.Publish(t.Context(), newTask(queue, "valid-1")); err != nil {
		t.Fatal(err)
	}
	publishRaw(t, b, queue, garbage[3:]...)
	c, err := b.Consume(t.Context(), []string{queue}, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 5*time.Second)
	buf := make([]*codec.Message, 8)
	n, err := c.Fetch(ctx, buf)
	if err != nil || n != 1 || string(buf[0].ID) != "valid-1" {
		t.Fatalf("fetched %d (%v), want only valid-1", n, err)
	}
	c.Ack(buf[0])
	codec.ReleaseMessage(buf[0])
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if n, err := c.Fetch(short, buf); err == nil { // rejects the rest of the garbage
		t.Fatalf("fetched %d more messages, want none", n)
	}
	if n := logs.count("ERROR amqp: rejecting"); n != len(garbage) {
		t.Fatalf("%d rejections logged, want %d", n, len(garbage))
	}
	c.Close()
	waitFor(t, ctx, "an empty queue", func() bool { n, err := b.QueueLen(ctx, queue); return err == nil && n == 0 })
	c2, err := b.Consume(t.Context(), []string{queue}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	short2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if n, err := c2.Fetch(short2, buf); err == nil {
		t.Fatalf("garbage came back: %d messages", n)
	}
}

// TestGarbageWorkerGoesOn: a celerity worker fed garbage between tasks
// runs every task.
func TestGarbageWorkerGoesOn(t *testing.T) {
	t.Parallel()
	queue := testQueue(t, "garbage-worker")
	app, b := newApp(t, "", engine.Config{TaskDefaultQueue: queue, TaskAcksLate: true})
	var ran atomic.Int64
	engine.RegisterRaw(app, "ok.task", func(context.Context, *engine.Task) error { ran.Add(1); return nil },
		engine.TaskIgnoreResult(true))
	if err := b.Declare(t.Context(), TaskQueue(queue, 0)); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		publishRaw(t, b, queue, garbage[i%len(garbage)])
		if err := app.SendRaw(t.Context(), "ok.task", []byte("[]"), nil); err != nil {
			t.Fatal(err)
		}
	}
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 2})
	ctx := ctxT(t, 10*time.Second)
	waitFor(t, ctx, "10 tasks", func() bool { return ran.Load() == 10 })
	waitFor(t, ctx, "an empty queue", func() bool { n, err := b.QueueLen(ctx, queue); return err == nil && n == 0 })
}

// TestPublishErrors: an unroutable message and a nacked one are errors
// the caller sees; a publish that makes the broker close the channel is
// one too, and the broker goes on working.
func TestPublishErrors(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	ctx := ctxT(t, 10*time.Second)

	m := newTask("no-such-binding-"+codec.NewUUID(), "returned-1")
	m.Exchange = []byte("amq.direct")
	err := b.Publish(ctx, m)
	var pe *PublishError
	if !errors.Is(err, ErrReturned) || !errors.As(err, &pe) || pe.Returned[0] != "returned-1" || !strings.Contains(err.Error(), "NO_ROUTE") {
		t.Fatalf("unroutable: %v, want ErrReturned for returned-1 (NO_ROUTE)", err)
	}

	full := testQueue(t, "full")
	if err := b.Declare(ctx, Queue{Name: full, Args: amqp091.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"},
		Exchange: Exchange{Name: "amq.direct", Kind: "direct", Durable: true}, RoutingKey: full}); err != nil {
		t.Fatal(err)
	}
	m = newTask(full, "nacked-1")
	m.Exchange = []byte("amq.direct")
	if err := b.Publish(ctx, m, newTask(testQueue(t, "fine"), "fine-1")); !errors.Is(err, ErrNacked) || errors.Is(err, ErrReturned) {
		t.Fatalf("full queue: %v, want ErrNacked", err)
	}

	m = newTask("x", "lost-1")
	m.Exchange = []byte("no-such-exchange-" + codec.NewUUID())
	err = b.Publish(ctx, m)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
		t.Fatalf("missing exchange: %v, want NOT_FOUND", err)
	}
	q := testQueue(t, "after")
	if err := b.Publish(ctx, newTask(q, "after-1")); err != nil {
		t.Fatalf("publish after a channel error: %v", err)
	}
	if n, err := b.QueueLen(ctx, q); err != nil || n != 1 {
		t.Fatalf("queue holds %d (%v), want 1", n, err)
	}
	if b.Purge(q) != 1 || b.Purge("no-such-queue-"+codec.NewUUID()) != 0 {
		t.Fatal("Purge")
	}
}

// TestPublishPersistentWithExpiration reads back what Publish wrote:
// delivery mode 2, the expiration from expires, reply_to = the broker's
// oid, priority, and the headers typed as py-amqp types them.
func TestPublishProperties(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t, WithMaxPriority(10))
	queue := testQueue(t, "props")
	m := newTask(queue, "props-1")
	m.ReplyTo = nil
	m.Priority = 7
	m.Expiration, m.HasExpiration = 120000, true
	m.TimeLimit = codec.TimeLimit{Hard: 60, HasHard: true}
	m.ExtraHeaders = []byte(`{"nested": {"a": [1, {"b": null}]}, "big": 8589934592}`)
	if err := b.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("basic.get: %v %v", ok, err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"delivery_mode", fmt.Sprint(d.DeliveryMode), "2"},
		{"expiration", d.Expiration, "120000"},
		{"priority", fmt.Sprint(d.Priority), "7"},
		{"reply_to", d.ReplyTo, b.OID()},
		{"correlation_id", d.CorrelationId, "props-1"},
		{"content_type", d.ContentType, "application/json"},
		{"retries", fmt.Sprintf("%T", d.Headers["retries"]), "int32"},
		{"timelimit", fmt.Sprintf("%#v", d.Headers["timelimit"]), "[]interface {}{60, interface {}(nil)}"},
		{"eta", fmt.Sprint(d.Headers["eta"]), "<nil>"},
		{"nested", fmt.Sprintf("%T", d.Headers["nested"]), "amqp091.Table"},
		{"big", fmt.Sprintf("%T", d.Headers["big"]), "int64"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %s, want %s", f.name, f.got, f.want)
		}
	}
}

// TestPublishRawEvent publishes a task event to the celeryev topic
// exchange as Celery's event dispatcher does and reads it from an event
// receiver's queue.
func TestPublishRawEvent(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	ctx := ctxT(t, 10*time.Second)
	q := EventQueue(codec.NewUUID(), "task.#")
	t.Cleanup(func() { adminBroker(t).DeleteQueue(context.Background(), q.Name) })
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"type": "task-succeeded", "uuid": "e-1", "hostname": "w@h"}]`)
	if err := b.PublishRaw(ctx, "celeryev", "task.multi", amqp091.Publishing{
		Headers: amqp091.Table{"hostname": "w@h"}, ContentType: "application/json", ContentEncoding: "utf-8",
		DeliveryMode: amqp091.Transient, Body: body,
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	d, ok, err := ch.Get(q.Name, true)
	if err != nil || !ok || string(d.Body) != string(body) || d.RoutingKey != "task.multi" || d.Headers["hostname"] != "w@h" {
		t.Fatalf("event queue: ok=%v err=%v delivery=%+v", ok, err, d)
	}
}

// TestSetPrefetchLowerHoldsBack: after the bound is lowered, deliveries
// RabbitMQ already sent are held until enough fetched messages are
// settled.
func TestSetPrefetchLowerHoldsBack(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	queue := testQueue(t, "lower")
	for i := range 8 {
		if err := b.Publish(t.Context(), newTask(queue, fmt.Sprintf("l-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Consume(t.Context(), []string{queue}, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	got := make([]*codec.Message, 4)
	for n := 0; n < 4; {
		k, err := c.Fetch(ctx, got[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	if err := c.SetPrefetch(2); err != nil {
		t.Fatal(err)
	}
	none := func() {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if n, err := c.Fetch(short, make([]*codec.Message, 4)); err == nil {
			t.Fatalf("fetched %d over the lowered bound", n)
		}
	}
	none() // 4 held, bound 2
	if err := c.Ack(got[:3]...); err != nil {
		t.Fatal(err)
	}
	buf := make([]*codec.Message, 4)
	n, err := c.Fetch(ctx, buf)
	if err != nil || n != 1 {
		t.Fatalf("fetched %d (%v) with 1 held and bound 2, want 1", n, err)
	}
	none()
	c.Ack(got[3], buf[0])
	for _, m := range append(got, buf[0]) {
		codec.ReleaseMessage(m)
	}
}

// TestDoubleSettleKeepsTheChannel: a worker that acks or rejects the same
// message twice (or acks what it rejected) must not make RabbitMQ close
// the channel with "unknown delivery tag".
func TestDoubleSettleKeepsTheChannel(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	queue := testQueue(t, "double")
	for i := range 4 {
		if err := b.Publish(t.Context(), newTask(queue, fmt.Sprintf("d-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Consume(t.Context(), []string{queue}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	var all []*codec.Message
	for len(all) < 4 {
		buf := make([]*codec.Message, 2)
		n, err := c.Fetch(ctx, buf)
		if err != nil {
			t.Fatalf("fetched %d of 4: %v", len(all), err)
		}
		for _, m := range buf[:n] {
			switch len(all) % 2 {
			case 0:
				c.Reject(false, m)
				c.Ack(m)
			case 1:
				c.Ack(m)
				c.Ack(m)
				c.Reject(true, m)
			}
			all = append(all, m)
		}
	}
	cons := c.(*Consumer)
	cons.mu.Lock()
	cons.flushLocked(true)
	s := cons.sess
	cons.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // RabbitMQ would close the channel now
	if s == nil || !s.alive() || s.ch.IsClosed() {
		t.Fatal("the channel was closed")
	}
	if n, err := b.QueueLen(ctx, queue); err != nil || n != 0 {
		t.Fatalf("%d messages back in the queue (%v)", n, err)
	}
	for _, m := range all {
		codec.ReleaseMessage(m)
	}
}
