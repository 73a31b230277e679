package memory_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// The tests below take a few messages of a backlog, which moves the rest
// of their level to the queue's stage, and check that the staged messages
// are still the queue's in every respect: priority order, Len, Purge,
// requeue order, other consumers and waiting ones.

// publishIDs publishes one message per id to queue q at priority prio.
func publishIDs(t *testing.T, b *memory.Broker, q string, prio uint8, ids ...string) {
	t.Helper()
	for _, id := range ids {
		m := codec.AcquireMessage()
		m.ID, m.RoutingKey, m.Priority = []byte(id), []byte(q), prio
		if err := b.PublishOne(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// ids names the messages numbered from to to-1: "m<from>"...
func ids(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("m%d", i))
	}
	return s
}

// poll takes up to n messages from c and returns their ids.
func poll(t *testing.T, c transport.Consumer, n int) ([]string, []*codec.Message) {
	t.Helper()
	buf := make([]*codec.Message, n)
	k, err := c.(transport.Poller).Poll(buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range buf[:k] {
		got = append(got, string(m.ID))
	}
	return got, buf[:k]
}

func consume(t *testing.T, b *memory.Broker, queues ...string) transport.Consumer {
	t.Helper()
	c, err := b.Consume(context.Background(), queues, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backlog returns a broker whose queue "q" holds m0..m<n-1> at priority 0,
// and a consumer of it.
func backlog(t *testing.T, n int) (*memory.Broker, transport.Consumer) {
	t.Helper()
	b := memory.NewBroker()
	t.Cleanup(func() { b.Close() })
	publishIDs(t, b, "q", 0, ids(0, n)...)
	return b, consume(t, b, "q")
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// A message of a higher priority published after a take staged the
// backlog comes out first, then the staged ones in order, then those
// published after them at the staged level.
func TestStagedBacklogYieldsToHigherPriority(t *testing.T) {
	b, c := backlog(t, 10)
	got, _ := poll(t, c, 2)
	wantIDs(t, "first take", got, "m0", "m1")
	publishIDs(t, b, "q", 5, "high")
	publishIDs(t, b, "q", 0, "m10")
	got, _ = poll(t, c, 1)
	wantIDs(t, "take after a priority 5 publish", got, "high")
	got, _ = poll(t, c, 20)
	wantIDs(t, "the rest", got, ids(2, 11)...)

	// Again with the higher-priority message arriving while the stage is
	// being taken from, in a take larger than what is staged.
	publishIDs(t, b, "q", 0, ids(20, 25)...)
	got, _ = poll(t, c, 1)
	wantIDs(t, "first of the second backlog", got, "m20")
	publishIDs(t, b, "q", 9, "top")
	got, _ = poll(t, c, 10)
	wantIDs(t, "take of all", got, "top", "m21", "m22", "m23", "m24")
}

// Staged messages count in Len and are dropped by Purge.
func TestStagedMessagesCountInLenAndPurge(t *testing.T) {
	b, c := backlog(t, 10)
	poll(t, c, 3)
	publishIDs(t, b, "q", 0, "m10")
	if n := b.Len("q"); n != 8 {
		t.Fatalf("Len = %d, want 8 (7 staged, 1 queued since)", n)
	}
	if n := b.Purge("q"); n != 8 {
		t.Fatalf("Purge = %d, want 8", n)
	}
	if n := b.Len("q"); n != 0 {
		t.Fatalf("Len after Purge = %d", n)
	}
	if got, _ := poll(t, c, 10); len(got) != 0 {
		t.Fatalf("take after Purge = %v", got)
	}
}

// A rejected message goes back in front of the staged ones; a closed
// consumer's messages go back in front, oldest first.
func TestRequeueGoesAheadOfStagedMessages(t *testing.T) {
	b, c := backlog(t, 10)
	_, msgs := poll(t, c, 2)
	if err := c.Reject(true, msgs[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Reject(true, msgs[0]); err != nil {
		t.Fatal(err)
	}
	got, _ := poll(t, c, 3)
	wantIDs(t, "take after two requeues", got, "m0", "m1", "m2")

	c2 := consume(t, b, "q")
	got, _ = poll(t, c2, 2) // m3 m4, held by c2
	wantIDs(t, "second consumer's take", got, "m3", "m4")
	c2.Close()
	got, _ = poll(t, c, 3)
	wantIDs(t, "take after the second consumer closed", got, "m3", "m4", "m5")
}

// A consumer of several queues, and a consumer waiting in Fetch, get what
// another consumer's take staged.
func TestStagedMessagesReachOtherConsumers(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	publishIDs(t, b, "q", 0, ids(0, 6)...)
	c := consume(t, b, "q")
	poll(t, c, 1) // m1..m5 staged, the queue proper empty

	multi := consume(t, b, "other", "q")
	got, _ := poll(t, multi, 2)
	wantIDs(t, "multi-queue take", got, "m1", "m2")

	waiting := consume(t, b, "q")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]*codec.Message, 10)
	n, err := waiting.Fetch(ctx, buf)
	if err != nil {
		t.Fatalf("Fetch with staged messages: %v", err)
	}
	var fetched []string
	for _, m := range buf[:n] {
		fetched = append(fetched, string(m.ID))
	}
	wantIDs(t, "Fetch", fetched, "m3", "m4", "m5")

	// A consumer whose prefetch window is full waits for an ack, then
	// for messages: the staged ones count.
	publishIDs(t, b, "q", 0, ids(6, 9)...)
	one, err := b.Consume(ctx, []string{"q"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	got, held := poll(t, one, 1) // m6; m7 and m8 staged
	wantIDs(t, "take with a window of 1", got, "m6")
	next := make(chan string, 1)
	go func() {
		buf := make([]*codec.Message, 1)
		if n, err := one.Fetch(ctx, buf); err != nil || n != 1 {
			next <- fmt.Sprintf("Fetch = %d, %v", n, err)
			return
		}
		next <- string(buf[0].ID)
	}()
	time.Sleep(20 * time.Millisecond) // let Fetch wait for room
	if err := one.Ack(held...); err != nil {
		t.Fatal(err)
	}
	if id := <-next; id != "m7" {
		t.Fatalf("Fetch after the ack: %s, want m7", id)
	}
}

// Producers publishing at random priorities, consumers of one queue and of
// two taking batches of random sizes and requeueing some of what they
// take: every message is acknowledged exactly once, none is lost, and no
// consumer ever holds one another holds. (Bounded: 4 x 2000 messages.)
func TestStageUnderConcurrentProducersAndConsumers(t *testing.T) {
	const producers, perProducer = 4, 2000
	b := memory.NewBroker()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := make(map[string]int)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for k, queues := range [][]string{{"q"}, {"q"}, {"other", "q"}} {
		c, err := b.Consume(ctx, queues, 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			buf := make([]*codec.Message, 16)
			for {
				select {
				case <-done:
					return
				default:
				}
				n, err := c.(transport.Poller).Poll(buf[:1+rng.IntN(len(buf))])
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					runtime.Gosched()
					continue
				}
				for _, m := range buf[:n] {
					if rng.IntN(10) == 0 {
						if err := c.Reject(true, m); err != nil {
							t.Error(err)
						}
						continue
					}
					mu.Lock()
					acked[string(m.ID)]++
					mu.Unlock()
					if err := c.Ack(m); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	var pg sync.WaitGroup
	for p := range producers {
		pg.Add(1)
		go func() {
			defer pg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 2))
			for i := range perProducer {
				m := codec.AcquireMessage()
				m.ID = []byte(fmt.Sprintf("p%d-%d", p, i))
				m.RoutingKey, m.Priority = []byte("q"), uint8(rng.IntN(10))
				if err := b.PublishOne(ctx, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pg.Wait()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == producers*perProducer || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(done)
	wg.Wait()
	if len(acked) != producers*perProducer {
		t.Fatalf("%d of %d messages acknowledged", len(acked), producers*perProducer)
	}
	for id, n := range acked {
		if n != 1 {
			t.Errorf("%s acknowledged %d times", id, n)
		}
	}
	if n := b.Len("q"); n != 0 {
		t.Errorf("Len = %d after every message was acknowledged", n)
	}
}
