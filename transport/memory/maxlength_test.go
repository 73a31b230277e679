package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
)

func message(queue, id string) *codec.Message {
	m := codec.AcquireMessage()
	m.RoutingKey = []byte(queue)
	m.ID = []byte(id)
	return m
}

// publishing starts PublishOne of m in a goroutine; the returned channel
// yields its error.
func publishing(ctx context.Context, b *Broker, m *codec.Message) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.PublishOne(ctx, m) }()
	return done
}

// waitBlocked returns once a publisher waits for room in the named queue.
func waitBlocked(t *testing.T, b *Broker, name string) {
	t.Helper()
	q := b.queue([]byte(name))
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		blocked := q.room != nil
		q.mu.Unlock()
		if blocked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no publisher is waiting for room")
		}
		time.Sleep(time.Millisecond)
	}
}

func poll(t *testing.T, c *Consumer, n int) []*codec.Message {
	t.Helper()
	buf := make([]*codec.Message, n)
	got, err := c.Poll(buf)
	if err != nil || got != n {
		t.Fatalf("Poll(%d) = %d, %v", n, got, err)
	}
	return buf
}

// fullQueue returns a broker with MaxLength(n) whose queue "q" is full:
// messages "0" to n-1.
func fullQueue(t *testing.T, n int) *Broker {
	t.Helper()
	b := NewBroker(MaxLength(n))
	t.Cleanup(func() { b.Close() })
	for i := range n {
		if err := b.PublishOne(context.Background(), message("q", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// fullQueueConsumer is fullQueue(t, n) and a consumer of its queue.
func fullQueueConsumer(t *testing.T, n int) (*Broker, *Consumer) {
	t.Helper()
	b := fullQueue(t, n)
	cs, err := b.Consume(context.Background(), []string{"q"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b, cs.(*Consumer)
}

func ids(msgs []*codec.Message) string {
	s := ""
	for _, m := range msgs {
		s += string(m.ID) + " "
	}
	return s
}

// A full queue holds its publisher until consumers have taken it down to
// half of MaxLength; the waiting message then lands behind the others.
func TestMaxLengthWaitsForHalf(t *testing.T) {
	ctx := context.Background()
	b := fullQueue(t, 4)
	done := publishing(ctx, b, message("q", "4"))
	waitBlocked(t, b, "q")
	cs, err := b.Consume(ctx, []string{"q"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := cs.(*Consumer)
	first := poll(t, c, 1) // 3 left: still more than half
	select {
	case err := <-done:
		t.Fatalf("publisher returned (%v) with the queue above half its bound", err)
	default:
	}
	waitBlocked(t, b, "q")
	first = append(first, poll(t, c, 1)...) // 2 left: half
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publisher still waiting with the queue at half its bound")
	}
	if n := b.Len("q"); n != 3 {
		t.Fatalf("Len = %d after the waiting publish, want 3", n)
	}
	rest := poll(t, c, 3)
	if got := ids(append(first, rest...)); got != "0 1 2 3 4 " {
		t.Fatalf("consumed %q, want publish order", got)
	}
	c.Ack(append(first, rest...)...)
}

// A queue with a MaxLength stages (see stage), and its bound counts the
// staged messages: after a take a publisher finds room only for what the
// take removed, then waits until takes from the stage alone bring the
// queue down to half.
func TestBoundedQueueCountsStagedMessages(t *testing.T) {
	ctx := context.Background()
	b, c := fullQueueConsumer(t, 4)
	taken := poll(t, c, 1)
	if n := b.Len("q"); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	q := b.queue([]byte("q"))
	q.st.mu.Lock()
	staged := q.st.ring.len()
	q.st.mu.Unlock()
	if staged != 3 {
		t.Fatalf("%d messages staged after the first take, want the other 3", staged)
	}
	if err := <-publishing(ctx, b, message("q", "4")); err != nil { // 3 ready: room for one
		t.Fatal(err)
	}
	done := publishing(ctx, b, message("q", "5"))
	waitBlocked(t, b, "q")
	taken = append(taken, poll(t, c, 2)...) // down to 2 = max/2: the publisher goes on
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rest := poll(t, c, 3)
	if got := ids(rest); got != "3 4 5 " {
		t.Fatalf("the rest = %q, want 3 4 5", got)
	}
	c.Ack(append(taken, rest...)...)
}

// A message requeued into the stage counts against the bound at once.
func TestMaxLengthCountsRequeuedStagedMessages(t *testing.T) {
	ctx := context.Background()
	b, c := fullQueueConsumer(t, 4)
	held := poll(t, c, 3) // "3" is left, staged
	if err := c.Reject(true, held[0]); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // 2 ready: room for 2
		if err := b.PublishOne(ctx, message("q", fmt.Sprint(4+i))); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.PublishOne(short, message("q", "6")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish into a full queue = %v, want it to wait", err)
	}
	if n := b.Len("q"); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	rest := poll(t, c, 4)
	if got := ids(rest); got != "0 3 4 5 " {
		t.Fatalf("the rest = %q, want 0 3 4 5", got)
	}
	c.Ack(append(held[1:], rest...)...)
}

// A batch Publish queues what fits, waits, then queues the rest in order.
func TestMaxLengthBatchPublish(t *testing.T) {
	ctx := context.Background()
	b := NewBroker(MaxLength(2))
	defer b.Close()
	var batch []*codec.Message
	for i := range 5 {
		batch = append(batch, message("q", fmt.Sprint(i)))
	}
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, batch...) }()
	cs, _ := b.Consume(ctx, []string{"q"}, 0)
	c := cs.(*Consumer)
	var got []*codec.Message
	for len(got) < 5 {
		buf := make([]*codec.Message, 8)
		n, err := c.Fetch(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > 2 {
			t.Fatalf("fetched %d messages from a queue bounded to 2", n)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := ids(got); s != "0 1 2 3 4 " {
		t.Fatalf("consumed %q, want publish order", s)
	}
	c.Ack(got...)
}

// A publisher waiting for room gives up with its context, and on Close.
func TestMaxLengthWaitEnds(t *testing.T) {
	b := NewBroker(MaxLength(1))
	if err := b.PublishOne(context.Background(), message("q", "0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := publishing(ctx, b, message("q", "1"))
	waitBlocked(t, b, "q")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait = %v, want context.Canceled", err)
	}
	batch := []*codec.Message{message("q", "2"), message("q", "3")}
	batchDone := make(chan error, 1)
	go func() { batchDone <- b.Publish(context.Background(), batch...) }()
	waitBlocked(t, b, "q")
	b.Close()
	if err := <-batchDone; err != ErrClosed {
		t.Fatalf("wait across Close = %v, want ErrClosed", err)
	}
	if n := b.Len("q"); n != 1 {
		t.Fatalf("Len = %d, want the 1 message queued before", n)
	}
}

// Requeued messages go back whatever the bound: a consumer's reject or
// close must not wait for itself.
func TestMaxLengthRequeueDoesNotWait(t *testing.T) {
	ctx := context.Background()
	b := NewBroker(MaxLength(2))
	defer b.Close()
	for i := range 2 {
		b.PublishOne(ctx, message("q", fmt.Sprint(i)))
	}
	cs, _ := b.Consume(ctx, []string{"q"}, 0)
	c := cs.(*Consumer)
	held := poll(t, c, 2)
	for i := 2; i < 4; i++ {
		if err := b.PublishOne(ctx, message("q", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reject(true, held[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.Len("q"); n != 4 {
		t.Fatalf("Len = %d after requeueing 2 into a full queue, want 4", n)
	}
}

// Concurrent producers against a bounded queue: every message arrives
// once, and no fetch ever sees more than the bound.
func TestMaxLengthConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const producers, each, bound = 4, 2000, 16
	b := NewBroker(MaxLength(bound))
	defer b.Close()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if err := b.PublishOne(ctx, message("q", fmt.Sprintf("%d-%d", p, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	cs, _ := b.Consume(ctx, []string{"q"}, 0)
	seen := make(map[string]bool)
	buf := make([]*codec.Message, 64)
	for len(seen) < producers*each {
		n, err := cs.Fetch(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > bound {
			t.Fatalf("fetched %d messages from a queue bounded to %d", n, bound)
		}
		if l := b.Len("q"); l > bound {
			t.Fatalf("Len = %d in a queue bounded to %d", l, bound)
		}
		for _, m := range buf[:n] {
			if seen[string(m.ID)] {
				t.Fatalf("%s delivered twice", m.ID)
			}
			seen[string(m.ID)] = true
		}
		cs.Ack(buf[:n]...)
	}
	wg.Wait()
}
