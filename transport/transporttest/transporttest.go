package transporttest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// Harness describes the transport under test.
type Harness struct {
	// NewBroker returns a new broker whose queues no other test sees. It
	// registers its own cleanup with t.Cleanup.
	NewBroker func(t *testing.T) transport.Broker
	// NewBackend returns a new, isolated result backend (nil: skip the
	// backend tests).
	NewBackend func(t *testing.T) transport.Backend
	// HighPriorityFirst is true when priority 9 is served before 0
	// (RabbitMQ, memory) and false when 0 comes first (Redis).
	HighPriorityFirst bool
	// Queue returns the queue name to use for name (default: name). A
	// transport whose brokers share a namespace adds its own prefix here.
	Queue func(t *testing.T, name string) string
	// RedeliveryWait bounds how long a requeued message may take to come
	// back (default 5s).
	RedeliveryWait time.Duration
}

func (h Harness) queue(t *testing.T, name string) string {
	if h.Queue != nil {
		return h.Queue(t, name)
	}
	return name
}

func (h Harness) wait() time.Duration {
	if h.RedeliveryWait > 0 {
		return h.RedeliveryWait
	}
	return 5 * time.Second
}

// NewMessage returns a complete protocol v2 task message for queue with
// the given id and priority, as the engine would publish it.
func NewMessage(queue, id string, priority uint8) *codec.Message {
	m := codec.AcquireMessage()
	m.Protocol = 2
	m.Lang = []byte("go")
	m.Task = []byte("transporttest.noop")
	m.ID = m.OwnString(id)
	m.RootID = m.ID
	m.CorrelationID = m.ID
	m.ArgsRepr = []byte("()")
	m.KwargsRepr = []byte("{}")
	m.Origin = []byte("gen0@transporttest")
	m.ContentType = []byte("application/json")
	m.ContentEncoding = []byte("utf-8")
	m.DeliveryMode = 2
	m.Priority = priority
	m.RoutingKey = m.OwnString(queue)
	m.Body = m.Own(codec.AppendJSONBody(nil, []byte(`["`+id+`"]`), nil, nil))
	m.NewDeliveryTag()
	return m
}

// FetchN fetches until n messages arrived, failing the test if they do
// not within the given time.
func FetchN(t *testing.T, c transport.Consumer, n int, within time.Duration) []*codec.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []*codec.Message
	buf := make([]*codec.Message, n)
	for len(got) < n {
		k, err := c.Fetch(ctx, buf[:n-len(got)])
		if err != nil {
			t.Fatalf("fetch: got %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, buf[:k]...)
	}
	return got
}

// FetchNone fails the test if a message arrives within d.
func FetchNone(t *testing.T, c transport.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	buf := make([]*codec.Message, 1)
	if n, err := c.Fetch(ctx, buf); err == nil && n > 0 {
		t.Fatalf("expected no message, got %s", buf[0].ID)
	}
}

// IDs returns the task ids of ms.
func IDs(ms []*codec.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.ID)
	}
	return out
}

// Release releases each of ms with codec.ReleaseMessage.
func Release(ms []*codec.Message) {
	for _, m := range ms {
		codec.ReleaseMessage(m)
	}
}

func publish(t *testing.T, b transport.Broker, msgs ...*codec.Message) {
	t.Helper()
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func consume(t *testing.T, b transport.Broker, prefetch int, queues ...string) transport.Consumer {
	t.Helper()
	c, err := b.Consume(context.Background(), queues, prefetch)
	if err != nil {
		t.Fatalf("consume %v: %v", queues, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RunBroker runs the broker conformance tests.
func RunBroker(t *testing.T, h Harness) {
	t.Run("FIFOPerQueue", func(t *testing.T) { testFIFO(t, h) })
	t.Run("MessageRoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("Priorities", func(t *testing.T) { testPriorities(t, h) })
	t.Run("PrefetchBound", func(t *testing.T) { testPrefetch(t, h) })
	t.Run("AckedIsGone", func(t *testing.T) { testAcked(t, h) })
	t.Run("RejectRequeue", func(t *testing.T) { testRejectRequeue(t, h) })
	t.Run("RejectDrop", func(t *testing.T) { testRejectDrop(t, h) })
	t.Run("RedeliveryAfterConsumerCloses", func(t *testing.T) { testRedelivery(t, h) })
	t.Run("SeveralQueuesAreAllServed", func(t *testing.T) { testFairness(t, h) })
	t.Run("FetchHonoursContext", func(t *testing.T) { testFetchContext(t, h) })
	t.Run("ConcurrentConsumersGetEachMessageOnce", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("QueuesAddedAndCancelled", func(t *testing.T) { testQueueChanges(t, h) })
	t.Run("CancelledQueueMessagesStaySettleable", func(t *testing.T) { testCancelSettle(t, h) })
	t.Run("CancelLosesNothing", func(t *testing.T) { testCancelLosesNothing(t, h) })
	t.Run("Poller", func(t *testing.T) { testPoller(t, h) })
	t.Run("OnePublisher", func(t *testing.T) { testOnePublisher(t, h) })
}

func testFIFO(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "fifo")
	var want []string
	for i := range 20 {
		id := "fifo-" + strconv.Itoa(i)
		want = append(want, id)
		publish(t, b, NewMessage(q, id, 0))
	}
	c := consume(t, b, 0, q)
	got := FetchN(t, c, 20, h.wait())
	if !slices.Equal(IDs(got), want) {
		t.Fatalf("order %v, want %v", IDs(got), want)
	}
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
}

func testRoundTrip(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "roundtrip")
	m := NewMessage(q, "rt-1", 0)
	m.ETA = time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)
	m.Expires = time.Date(2030, 1, 2, 4, 4, 5, 0, time.UTC)
	m.Retries = 2
	m.TimeLimit = codec.TimeLimit{Hard: 60, Soft: 50, HasHard: true, HasSoft: true}
	m.Group = []byte("group-1")
	m.GroupIndex, m.HasGroupIndex = 3, true
	m.ParentID = []byte("parent-1")
	m.ReplyTo = []byte("reply-1")
	m.ExtraHeaders = []byte(`{"custom":"x"}`)
	publish(t, b, m)
	c := consume(t, b, 0, q)
	got := FetchN(t, c, 1, h.wait())[0]
	defer codec.ReleaseMessage(got)
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"task", string(got.Task), "transporttest.noop"},
		{"id", string(got.ID), "rt-1"},
		{"root_id", string(got.RootID), "rt-1"},
		{"parent_id", string(got.ParentID), "parent-1"},
		{"group", string(got.Group), "group-1"},
		{"reply_to", string(got.ReplyTo), "reply-1"},
		{"correlation_id", string(got.CorrelationID), "rt-1"},
		{"content_type", string(got.ContentType), "application/json"},
		{"routing_key", string(got.RoutingKey), q},
		{"body", string(got.Body), `[["rt-1"], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`},
		{"eta", got.ETA.UTC().Format(time.RFC3339Nano), "2030-01-02T03:04:05.678901Z"},
		{"expires", got.Expires.UTC().Format(time.RFC3339Nano), "2030-01-02T04:04:05Z"},
		{"retries", strconv.Itoa(got.Retries), "2"},
		{"group_index", fmt.Sprint(got.GroupIndex, got.HasGroupIndex), "3 true"},
		{"timelimit", fmt.Sprint(got.TimeLimit), fmt.Sprint(codec.TimeLimit{Hard: 60, Soft: 50, HasHard: true, HasSoft: true})},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if err := c.Ack(got); err != nil {
		t.Fatal(err)
	}
}

func testPriorities(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "prio")
	publish(t, b, NewMessage(q, "p0", 0), NewMessage(q, "p9", 9), NewMessage(q, "p5", 5), NewMessage(q, "p0b", 0))
	c := consume(t, b, 0, q)
	got := IDs(FetchN(t, c, 4, h.wait()))
	want := []string{"p9", "p5", "p0", "p0b"}
	if !h.HighPriorityFirst {
		want = []string{"p0", "p0b", "p5", "p9"}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("priority order %v, want %v", got, want)
	}
}

func testPrefetch(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "prefetch")
	for i := range 10 {
		publish(t, b, NewMessage(q, "pf-"+strconv.Itoa(i), 0))
	}
	c := consume(t, b, 3, q)
	got := FetchN(t, c, 3, h.wait())
	FetchNone(t, c, 200*time.Millisecond) // window full
	if err := c.Ack(got[0]); err != nil {
		t.Fatal(err)
	}
	more := FetchN(t, c, 1, h.wait()) // one slot freed
	FetchNone(t, c, 200*time.Millisecond)
	if err := c.SetPrefetch(5); err != nil {
		t.Fatal(err)
	}
	wider := FetchN(t, c, 2, h.wait()) // bound raised by 2
	all := append(append(got, more...), wider...)
	if err := c.Ack(all[1:]...); err != nil {
		t.Fatal(err)
	}
	Release(all)
}

func testAcked(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "acked")
	publish(t, b, NewMessage(q, "a-1", 0))
	c := consume(t, b, 0, q)
	got := FetchN(t, c, 1, h.wait())
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := consume(t, b, 0, q)
	FetchNone(t, c2, 300*time.Millisecond)
}

func testRejectRequeue(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "requeue")
	publish(t, b, NewMessage(q, "rq-1", 0))
	c := consume(t, b, 0, q)
	got := FetchN(t, c, 1, h.wait())
	if got[0].Redelivered {
		t.Fatal("first delivery flagged redelivered")
	}
	if err := c.Reject(true, got...); err != nil {
		t.Fatal(err)
	}
	Release(got) // the caller still owns rejected messages
	again := FetchN(t, c, 1, h.wait())
	if string(again[0].ID) != "rq-1" || !again[0].Redelivered {
		t.Fatalf("requeued message came back as %s redelivered=%v", again[0].ID, again[0].Redelivered)
	}
	if err := c.Ack(again...); err != nil {
		t.Fatal(err)
	}
	Release(again)
}

func testRejectDrop(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "drop")
	publish(t, b, NewMessage(q, "d-1", 0))
	c := consume(t, b, 0, q)
	got := FetchN(t, c, 1, h.wait())
	if err := c.Reject(false, got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
	FetchNone(t, c, 300*time.Millisecond)
}

func testRedelivery(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "redeliver")
	publish(t, b, NewMessage(q, "r-1", 0), NewMessage(q, "r-2", 0), NewMessage(q, "r-3", 0))
	c, err := b.Consume(context.Background(), []string{q}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := FetchN(t, c, 3, h.wait())
	if err := c.Ack(got[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // "dies" holding r-1 and r-3
		t.Fatal(err)
	}
	Release(got)
	c2 := consume(t, b, 0, q)
	back := FetchN(t, c2, 2, h.wait())
	gotIDs := IDs(back)
	slices.Sort(gotIDs)
	if !slices.Equal(gotIDs, []string{"r-1", "r-3"}) {
		t.Fatalf("redelivered %v, want [r-1 r-3]", gotIDs)
	}
	for _, m := range back {
		if !m.Redelivered {
			t.Errorf("%s not flagged redelivered", m.ID)
		}
	}
	if err := c2.Ack(back...); err != nil {
		t.Fatal(err)
	}
	Release(back)
	FetchNone(t, c2, 200*time.Millisecond)
}

func testFairness(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	qa, qb := h.queue(t, "fair-a"), h.queue(t, "fair-b")
	for i := range 50 {
		publish(t, b, NewMessage(qa, "a-"+strconv.Itoa(i), 0))
	}
	publish(t, b, NewMessage(qb, "b-0", 0))
	c := consume(t, b, 0, qa, qb)
	// b-0 must not wait behind all 50 messages of a.
	got := FetchN(t, c, 26, h.wait())
	if !slices.Contains(IDs(got), "b-0") {
		t.Fatalf("queue b starved: first 26 deliveries %v", IDs(got))
	}
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
}

func testFetchContext(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	c := consume(t, b, 0, h.queue(t, "empty"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, make([]*codec.Message, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Fetch on an empty queue returned without error")
		}
	case <-time.After(h.wait() + 2*time.Second):
		t.Fatal("Fetch ignored its context")
	}
}

func testConcurrent(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "concurrent")
	const n = 400
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				if err := b.Publish(context.Background(), NewMessage(q, fmt.Sprintf("c-%d-%d", p, i), 0)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cw sync.WaitGroup
	for range 3 {
		c := consume(t, b, 16, q)
		cw.Add(1)
		go func() {
			defer cw.Done()
			buf := make([]*codec.Message, 8)
			for {
				mu.Lock()
				total := len(seen)
				mu.Unlock()
				if total >= n {
					return
				}
				fctx, fcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				k, err := c.Fetch(fctx, buf)
				fcancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				mu.Lock()
				for _, m := range buf[:k] {
					seen[string(m.ID)]++
				}
				mu.Unlock()
				if err := c.Ack(buf[:k]...); err != nil {
					t.Error(err)
				}
				Release(buf[:k])
			}
		}()
	}
	wg.Wait()
	cw.Wait()
	if len(seen) != n {
		t.Fatalf("consumers saw %d distinct messages, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("%s delivered %d times", id, k)
		}
	}
}

// testQueueChanges: AddQueue wakes a waiting Fetch with the new queue's
// messages; after CancelQueue nothing more is taken from the queue (another
// consumer gets it); with every queue cancelled Fetch waits, and AddQueue
// brings a cancelled queue back.
func testQueueChanges(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	qa, qb := h.queue(t, "change-a"), h.queue(t, "change-b")
	ctx := context.Background()
	c := consume(t, b, 0, qa)
	publish(t, b, NewMessage(qb, "b-1", 0))
	FetchNone(t, c, 200*time.Millisecond)

	// A Fetch waiting on qa alone returns b-1 once qb is added.
	fetched := make(chan []*codec.Message, 1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, h.wait())
		defer cancel()
		buf := make([]*codec.Message, 4)
		n, err := c.Fetch(fctx, buf)
		if err != nil {
			t.Errorf("fetch after AddQueue: %v", err)
		}
		fetched <- buf[:n]
	}()
	time.Sleep(50 * time.Millisecond) // let Fetch start waiting (a race here only weakens the test)
	if err := c.AddQueue(ctx, qb); err != nil {
		t.Fatalf("AddQueue: %v", err)
	}
	if err := c.AddQueue(ctx, qb); err != nil {
		t.Fatalf("AddQueue of a consumed queue: %v", err)
	}
	got := <-fetched
	if !slices.Equal(IDs(got), []string{"b-1"}) {
		t.Fatalf("after AddQueue fetched %v, want [b-1]", IDs(got))
	}
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)

	if err := c.CancelQueue(ctx, qa); err != nil {
		t.Fatalf("CancelQueue: %v", err)
	}
	if err := c.CancelQueue(ctx, qa); err != nil {
		t.Fatalf("CancelQueue of a cancelled queue: %v", err)
	}
	publish(t, b, NewMessage(qa, "a-1", 0), NewMessage(qb, "b-2", 0))
	got = FetchN(t, c, 1, h.wait())
	if !slices.Equal(IDs(got), []string{"b-2"}) {
		t.Fatalf("after cancelling %s fetched %v, want [b-2]", qa, IDs(got))
	}
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
	FetchNone(t, c, 300*time.Millisecond)

	// Every queue cancelled: Fetch waits; a-1 went to nobody.
	if err := c.CancelQueue(ctx, qb); err != nil {
		t.Fatal(err)
	}
	publish(t, b, NewMessage(qb, "b-3", 0))
	FetchNone(t, c, 300*time.Millisecond)
	other := consume(t, b, 0, qa)
	got = FetchN(t, other, 1, h.wait())
	if !slices.Equal(IDs(got), []string{"a-1"}) {
		t.Fatalf("a second consumer of the cancelled queue fetched %v, want [a-1]", IDs(got))
	}
	if err := other.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)

	// A cancelled queue comes back.
	if err := c.AddQueue(ctx, qb); err != nil {
		t.Fatal(err)
	}
	got = FetchN(t, c, 1, h.wait())
	if !slices.Equal(IDs(got), []string{"b-3"}) {
		t.Fatalf("after adding %s back fetched %v, want [b-3]", qb, IDs(got))
	}
	if err := c.Ack(got...); err != nil {
		t.Fatal(err)
	}
	Release(got)
}

// testCancelSettle: messages fetched from a queue before it was cancelled
// can still be acknowledged and rejected, and Close requeues the ones left.
func testCancelSettle(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "cancel-settle")
	ctx := context.Background()
	publish(t, b, NewMessage(q, "s-1", 0), NewMessage(q, "s-2", 0), NewMessage(q, "s-3", 0))
	c, err := b.Consume(ctx, []string{q}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := FetchN(t, c, 3, h.wait())
	if err := c.CancelQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*codec.Message{}
	for _, m := range got {
		byID[string(m.ID)] = m
	}
	if err := c.Ack(byID["s-1"]); err != nil {
		t.Fatalf("ack after cancel: %v", err)
	}
	if err := c.Reject(false, byID["s-2"]); err != nil {
		t.Fatalf("reject after cancel: %v", err)
	}
	if err := c.Close(); err != nil { // s-3 is still held: requeued
		t.Fatal(err)
	}
	Release(got)
	c2 := consume(t, b, 0, q)
	back := FetchN(t, c2, 1, h.wait())
	if !slices.Equal(IDs(back), []string{"s-3"}) || !back[0].Redelivered {
		t.Fatalf("after Close got %v (redelivered %v), want [s-3] redelivered", IDs(back), back[0].Redelivered)
	}
	if err := c2.Ack(back...); err != nil {
		t.Fatal(err)
	}
	Release(back)
	FetchNone(t, c2, 200*time.Millisecond)
}

// testCancelLosesNothing: cancelling a queue with messages prefetched or
// on their way loses none and duplicates none: what Fetch still returns
// plus what stays in the queue is everything.
func testCancelLosesNothing(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "cancel-all")
	ctx := context.Background()
	const n = 40
	for i := range n {
		publish(t, b, NewMessage(q, "x-"+strconv.Itoa(i), 0))
	}
	seen := map[string]int{}
	settle := func(c transport.Consumer, ms []*codec.Message) {
		for _, m := range ms {
			seen[string(m.ID)]++
		}
		if err := c.Ack(ms...); err != nil {
			t.Fatal(err)
		}
		Release(ms)
	}
	c := consume(t, b, 10, q)
	settle(c, FetchN(t, c, 2, h.wait()))
	if err := c.CancelQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	for { // what was prefetched or on its way
		fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		buf := make([]*codec.Message, n)
		k, err := c.Fetch(fctx, buf)
		cancel()
		if err != nil || k == 0 {
			break
		}
		settle(c, buf[:k])
	}
	other := consume(t, b, 0, q)
	if rest := n - len(seen); rest > 0 {
		settle(other, FetchN(t, other, rest, h.wait()))
	}
	FetchNone(t, other, 200*time.Millisecond)
	if len(seen) != n {
		t.Fatalf("saw %d distinct messages, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("%s delivered %d times", id, k)
		}
	}
}

// testPoller checks transport.Poller where the consumer implements it:
// Poll never waits and keeps the prefetch bound; Wait returns only when a
// Poll can find a message; Poll and Fetch side by side hand each message
// out once, in queue order.
func testPoller(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	q := h.queue(t, "poll")
	c := consume(t, b, 3, q)
	p, ok := c.(transport.Poller)
	if !ok {
		t.Skipf("%T does not implement transport.Poller", c)
	}
	buf := make([]*codec.Message, 8)
	if n, err := p.Poll(buf); n != 0 || err != nil {
		t.Fatalf("Poll on an empty queue: %d, %v", n, err)
	}
	waitFor := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return p.Wait(ctx)
	}
	if err := waitFor(100 * time.Millisecond); err == nil {
		t.Fatal("Wait returned on an empty queue")
	}
	waited := make(chan error, 1)
	go func() { waited <- waitFor(h.wait()) }()
	time.Sleep(20 * time.Millisecond)
	for i := range 5 {
		publish(t, b, NewMessage(q, "poll-"+strconv.Itoa(i), 0))
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait after a publish: %v", err)
	}
	n, err := p.Poll(buf)
	if err != nil || n != 3 {
		t.Fatalf("Poll with prefetch 3: %d, %v", n, err)
	}
	got := slices.Clone(buf[:n])
	if n, _ := p.Poll(buf); n != 0 {
		t.Fatalf("Poll took %d messages past the prefetch bound", n)
	}
	if err := waitFor(100 * time.Millisecond); err == nil {
		t.Fatal("Wait returned with the prefetch window full")
	}
	go func() { waited <- waitFor(h.wait()) }()
	time.Sleep(20 * time.Millisecond)
	if err := c.Ack(got[0]); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait after an ack made room: %v", err)
	}
	// The rest, by Fetch and Poll taking turns: each once, in order.
	if err := c.SetPrefetch(0); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 40; i++ {
		publish(t, b, NewMessage(q, "poll-"+strconv.Itoa(i), 0))
	}
	for len(got) < 40 {
		if len(got)%2 == 0 {
			got = append(got, FetchN(t, c, 1, h.wait())...)
			continue
		}
		if n, err := p.Poll(buf[:1]); err != nil {
			t.Fatal(err)
		} else {
			got = append(got, buf[:n]...)
		}
	}
	for i, id := range IDs(got) {
		if want := "poll-" + strconv.Itoa(i); id != want {
			t.Fatalf("message %d is %s, want %s", i, id, want)
		}
	}
	if err := c.Ack(got[1:]...); err != nil {
		t.Fatal(err)
	}
	Release(got)
}

// PublishOne does what Publish of one message does: it wakes a waiting
// Fetch, and its messages take their place by priority and order among
// those published by Publish.
func testOnePublisher(t *testing.T, h Harness) {
	b := h.NewBroker(t)
	one, ok := b.(transport.OnePublisher)
	if !ok {
		t.Skipf("%T does not implement transport.OnePublisher", b)
	}
	publishOne := func(m *codec.Message) {
		t.Helper()
		if err := one.PublishOne(context.Background(), m); err != nil {
			t.Fatalf("PublishOne: %v", err)
		}
	}
	q := h.queue(t, "one")
	c := consume(t, b, 0, q)
	fetched := make(chan []*codec.Message, 1)
	go func() {
		buf := make([]*codec.Message, 1)
		ctx, cancel := context.WithTimeout(context.Background(), h.wait())
		defer cancel()
		n, _ := c.Fetch(ctx, buf)
		fetched <- buf[:n]
	}()
	time.Sleep(20 * time.Millisecond)
	publishOne(NewMessage(q, "first", 0))
	first := <-fetched
	if len(first) != 1 || string(first[0].ID) != "first" {
		t.Fatalf("a waiting Fetch got %v after PublishOne, want [first]", IDs(first))
	}
	publishOne(NewMessage(q, "p0", 0))
	publish(t, b, NewMessage(q, "p9", 9))
	publishOne(NewMessage(q, "p5", 5))
	publishOne(NewMessage(q, "p0b", 0))
	got := FetchN(t, c, 4, h.wait())
	want := []string{"p9", "p5", "p0", "p0b"}
	if !h.HighPriorityFirst {
		want = []string{"p0", "p0b", "p5", "p9"}
	}
	if !slices.Equal(IDs(got), want) {
		t.Fatalf("order %v, want %v", IDs(got), want)
	}
	if err := c.Ack(append(first, got...)...); err != nil {
		t.Fatal(err)
	}
	Release(first)
	Release(got)
}
