package memory

import (
	"context"
	"errors"
	"sync"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// ErrClosed is returned by operations on a closed broker or consumer.
var ErrClosed = errors.New("memory: closed")

// levels is the number of priority levels (Celery's 0-9).
const levels = 10

// Broker is an in-process message broker. The zero value is not usable;
// call NewBroker.
type Broker struct {
	mu     sync.Mutex
	queues map[string]*queue
	closed bool
}

// queue is one named queue: a FIFO ring per priority level, plus the
// consumers waiting for it to become non-empty.
type queue struct {
	name    string
	levels  [levels]ring
	n       int
	waiters []*Consumer
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{queues: make(map[string]*queue)}
}

var _ transport.Broker = (*Broker)(nil)

// queueLocked returns the named queue, creating it. b.mu is held.
func (b *Broker) queueLocked(name []byte) *queue {
	q := b.queues[string(name)] // no allocation for the lookup
	if q == nil {
		q = &queue{name: string(name)}
		b.queues[q.name] = q
	}
	return q
}

// Publish queues each message on the queue named by its routing key (the
// exchange is not consulted: every queue behaves as bound to a direct
// exchange of its own name and to the default exchange).
func (b *Broker) Publish(_ context.Context, msgs ...*codec.Message) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		for _, m := range msgs {
			codec.ReleaseMessage(m)
		}
		return ErrClosed
	}
	var wake *Consumer
	for _, m := range msgs {
		q := b.queueLocked(m.RoutingKey)
		q.levels[min(int(m.Priority), levels-1)].pushBack(m)
		q.n++
		for _, c := range q.waiters {
			if c != wake {
				c.notify()
			}
			wake = c
		}
		q.waiters = q.waiters[:0]
	}
	b.mu.Unlock()
	return nil
}

// Len returns the number of ready (not fetched) messages in queue.
func (b *Broker) Len(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queues[queue]; q != nil {
		return q.n
	}
	return 0
}

// Purge drops the ready messages of queue and returns how many there were.
func (b *Broker) Purge(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return 0
	}
	n := q.n
	for i := range q.levels {
		for q.levels[i].len() > 0 {
			codec.ReleaseMessage(q.levels[i].popFront())
		}
	}
	q.n = 0
	return n
}

// Consume returns a consumer of queues (fair round robin between them)
// holding at most prefetch unacknowledged messages (0 = unlimited).
func (b *Broker) Consume(_ context.Context, queues []string, prefetch int) (transport.Consumer, error) {
	if len(queues) == 0 {
		return nil, errors.New("memory: consume: no queues")
	}
	if prefetch < 0 {
		return nil, errors.New("memory: consume: negative prefetch")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	c := &Consumer{b: b, prefetch: prefetch, wake: make(chan struct{}, 1), acked: make(chan struct{}, 1)}
	for _, name := range queues {
		c.queues = append(c.queues, b.queueLocked([]byte(name)))
	}
	return c, nil
}

// Close drops every queued message; consumers' Fetch calls return ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, q := range b.queues {
		for _, c := range q.waiters {
			c.notify()
		}
		q.waiters = nil
	}
	return nil
}

// Consumer takes messages from a Broker's queues. See transport.Consumer.
type Consumer struct {
	b        *Broker
	queues   []*queue
	next     int // round-robin start
	prefetch int
	wake     chan struct{} // a queue got a message
	acked    chan struct{} // an ack made room in the prefetch window

	// Guarded by b.mu.
	unacked []*codec.Message // slot i holds the message with Tag i+1
	free    []uint64         // free slot tags
	held    int
	closed  bool
}

func (c *Consumer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Fetch implements transport.Consumer.
func (c *Consumer) Fetch(ctx context.Context, dst []*codec.Message) (int, error) {
	for {
		b := c.b
		b.mu.Lock()
		if b.closed || c.closed {
			b.mu.Unlock()
			return 0, ErrClosed
		}
		room := len(dst)
		if c.prefetch > 0 {
			room = min(room, c.prefetch-c.held)
		}
		n := 0
		if room > 0 {
			n = c.takeLocked(dst[:room])
		}
		if n > 0 {
			b.mu.Unlock()
			return n, nil
		}
		wait := c.wake
		if room <= 0 {
			wait = c.acked
		} else {
			for _, q := range c.queues {
				q.waiters = append(q.waiters, c)
			}
		}
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			c.unwait()
			return 0, ctx.Err()
		}
	}
}

// takeLocked moves up to len(dst) messages into dst: highest priority
// first; within a level, one message from each queue in turn, starting
// with a different queue on every call. b.mu is held.
func (c *Consumer) takeLocked(dst []*codec.Message) int {
	n := 0
	for lvl := levels - 1; lvl >= 0 && n < len(dst); lvl-- {
		for progress := true; progress && n < len(dst); {
			progress = false
			for k := 0; k < len(c.queues) && n < len(dst); k++ {
				q := c.queues[(c.next+k)%len(c.queues)]
				r := &q.levels[lvl]
				if r.len() == 0 {
					continue
				}
				m := r.popFront()
				q.n--
				c.track(m)
				dst[n] = m
				n++
				progress = true
			}
		}
	}
	if n > 0 && len(c.queues) > 1 {
		c.next = (c.next + 1) % len(c.queues)
	}
	return n
}

// track records m as unacknowledged, giving it a slot tag. b.mu is held.
func (c *Consumer) track(m *codec.Message) {
	if k := len(c.free); k > 0 {
		m.Tag = c.free[k-1]
		c.free = c.free[:k-1]
		c.unacked[m.Tag-1] = m
	} else {
		c.unacked = append(c.unacked, m)
		m.Tag = uint64(len(c.unacked))
	}
	c.held++
}

// untrack forgets m; false if m is not held by c. b.mu is held.
func (c *Consumer) untrack(m *codec.Message) bool {
	if m.Tag == 0 || m.Tag > uint64(len(c.unacked)) || c.unacked[m.Tag-1] != m {
		return false
	}
	c.unacked[m.Tag-1] = nil
	c.free = append(c.free, m.Tag)
	m.Tag = 0
	c.held--
	return true
}

func (c *Consumer) unwait() {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	for _, q := range c.queues {
		for i, w := range q.waiters {
			if w == c {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
	}
}

// SetPrefetch implements transport.Consumer.
func (c *Consumer) SetPrefetch(n int) error {
	if n < 0 {
		return errors.New("memory: negative prefetch")
	}
	c.b.mu.Lock()
	c.prefetch = n
	c.b.mu.Unlock()
	c.signalRoom()
	return nil
}

// ErrNotHeld is returned by Ack and Reject for a message this consumer
// does not hold (already acknowledged, or fetched by another consumer).
var ErrNotHeld = errors.New("memory: message not held by this consumer")

// Ack implements transport.Consumer.
func (c *Consumer) Ack(msgs ...*codec.Message) error {
	c.b.mu.Lock()
	var err error
	for _, m := range msgs {
		if !c.untrack(m) {
			err = ErrNotHeld
		}
	}
	c.b.mu.Unlock()
	c.signalRoom()
	return err
}

func (c *Consumer) signalRoom() {
	select {
	case c.acked <- struct{}{}:
	default:
	}
}

// Reject implements transport.Consumer. A requeued message goes back, as
// a copy flagged Redelivered, to the front of its queue.
func (c *Consumer) Reject(requeue bool, msgs ...*codec.Message) error {
	c.b.mu.Lock()
	var err error
	for _, m := range msgs {
		if !c.untrack(m) {
			err = ErrNotHeld
			continue
		}
		if requeue {
			c.requeueLocked(m.Clone())
		}
	}
	c.b.mu.Unlock()
	c.signalRoom()
	return err
}

// requeueLocked puts m back at the front of its queue. b.mu is held.
func (c *Consumer) requeueLocked(m *codec.Message) {
	m.Redelivered = true
	q := c.b.queueLocked(m.RoutingKey)
	q.levels[min(int(m.Priority), levels-1)].pushFront(m)
	q.n++
	for _, w := range q.waiters {
		w.notify()
	}
	q.waiters = q.waiters[:0]
}

// Close implements transport.Consumer: copies of the unacknowledged
// messages are requeued at the front of their queues, oldest fetched first
// in line.
func (c *Consumer) Close() error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.b.closed {
		return nil
	}
	// Requeue newest first so that the oldest ends up at the front.
	for i := len(c.unacked) - 1; i >= 0; i-- {
		if m := c.unacked[i]; m != nil {
			c.unacked[i] = nil
			c.requeueLocked(m.Clone())
		}
	}
	c.held = 0
	c.notify()
	return nil
}
