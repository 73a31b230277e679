package memory

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// ErrClosed is returned by operations on a closed broker or consumer.
var ErrClosed = errors.New("memory: closed")

// levels is the number of priority levels (Celery's 0-9).
const levels = 10

// Broker is an in-process message broker. The zero value is not usable;
// call NewBroker.
//
// Locking: each queue has its own mutex (publish, and takes that find its
// stage empty), its stage another (takes, requeue; see stage), and each
// consumer its own (unacknowledged messages, prefetch): producers,
// consumers and acknowledgements of different queues and consumers do not
// contend, and a consumer taking from a stage does not contend with the
// queue's producers. The order is: a consumer's mutex, then stage mutexes,
// then queue mutexes, each kind in queue name order; never the reverse.
//
// A producer publishing while a consumer takes a batch waits for the
// queue's mutex. sync.Mutex spins before it parks, and each round of its
// spin is 30 PAUSE instructions: 740 ns on the 2-core AMD EPYC VMs
// measured (the runtime's BenchmarkProcYield/30), against holds of a
// few cache misses, so a collision cost the producer most of a microsecond
// and the spin was a fifth of its CPU in BenchmarkEngineMemoryNoop at c=2
// (in engine). Publish therefore polls TryLock a few hundred times before
// it falls back to Lock (queue.lock): c=2 ns/task x0.85, 13 interleaved
// runs. (Measured while the benchmark also moved a counter between the
// cores on every task, the same change showed nothing: the consumers set
// the pace then.) Two ways around the collisions were measured slower
// (medians of 25-41 interleaved runs): separate producer and consumer
// locks over a list of chunks with an atomic fill count (+6 to +13 %
// ns/task: with nothing to space them out, consumers take a message or
// two at a time and the two sides pass the same cache lines back and
// forth for each), and an inbox in which a producer that finds the mutex
// taken leaves its messages for the holder to move (+14 %: the moving
// falls on the consumers).
type Broker struct {
	mu        sync.Mutex               // serialises queue creation
	queues    atomic.Pointer[queueSet] // copy-on-write: lookups take no lock
	closed    atomic.Bool
	maxLength int // ready messages per queue; 0 = unbounded
}

// Option configures a Broker.
type Option func(*Broker)

// MaxLength bounds each queue to n ready (not yet fetched) messages; 0,
// the default, leaves queues unbounded. A publish that finds its queue
// full waits, as a send on a full buffered channel does, until consumers
// have taken the queue down to half of n, the broker is closed (ErrClosed)
// or its context is done (ctx.Err(); the messages not yet queued are
// released). Waking publishers at half of n rather than at the first free
// place lets a producer that outruns its consumers park once per n/2
// messages, not once per message. Requeued messages (Reject, a closed
// consumer) do not wait.
//
// The bound is back-pressure: a producer faster than its workers is slowed
// to their pace instead of growing the queue, and the memory it holds,
// without limit. It can deadlock a worker whose tasks publish to a full
// queue that only that worker consumes; that is why queues are unbounded
// unless asked. n above math.MaxInt32 counts as math.MaxInt32.
func MaxLength(n int) Option {
	return func(b *Broker) { b.maxLength = min(max(n, 0), math.MaxInt32) }
}

// queueSet is a broker's queues, replaced as a whole when one is added.
type queueSet struct {
	byName map[string]*queue
	// few lists the queues while there are at most fewQueues: comparing a
	// name with each costs less than hashing it (the map lookup was 16 of
	// the producer's 190 ns per task in engine's BenchmarkEngineMemoryNoop
	// at c=2).
	few []*queue
}

const fewQueues = 8

// find returns the named queue, or nil.
func (s *queueSet) find(name []byte) *queue {
	if len(s.byName) > fewQueues {
		return s.byName[string(name)] // no allocation
	}
	for _, q := range s.few {
		if q.name == string(name) {
			return q
		}
	}
	return nil
}

// queue is one named queue: a FIFO ring per priority level, plus the
// consumers waiting for it to become non-empty.
//
// Its layout is chosen for the two cores that share it, a producer
// publishing and a consumer taking batches (see Broker). All that a
// publish and a take write under mu, the counts and the ring of the
// default priority (level 0), shares mu's cache line, the first: a take
// fetches that one line from the producer's core, not two in turn, before
// it reaches the ring's slots. The fields a publish reads before it takes
// mu (name) or without writing them (max, waiters) are lines away, so
// that reading them does not fetch mu's line ahead of the lock's write.
// (A take that finds messages in the queue's stage does not lock mu at
// all; see stage.) The padding makes a queue 512 bytes, the largest size the Go allocator
// serves from spans of equal slots with no header, so a queue starts on a
// cache line (TestQueueLayout checks both).
//
// Measured with engine's BenchmarkEngineMemoryNoop on the 2-vCPU KVM
// (AMD EPYC) VMs, against the layout before (name, mu, the ten rings,
// then the counts), medians of per-pair ratios of interleaved runs: c=2
// ns/task x0.69 in the near vCPU placement and x0.80 in the far one (39
// and 21 pairs), c=64 x0.98 and x1.01. A first cut, which left the counts
// on mu's line but not all of level 0's ring (the allocator put it 8
// bytes past a line), measured x0.78 near and x0.81 far; mu on a line of
// its own, apart from the counts, x0.68 near but x0.86 far, where the
// take waits for two lines, one after the other.
type queue struct {
	mu sync.Mutex
	// filled has bit l set while levels[l] holds messages, so that a take
	// goes straight to the levels in use instead of looking at all ten
	// under the mutex the producer waits for.
	filled uint16
	// above is the level of the staged messages (see stage) until a
	// message of a higher level is queued and the stage is told so; at
	// other times levels-1, which no level exceeds.
	above int8
	// staged is, in a bounded queue (max > 0), how many messages the
	// stage held when both mutexes were last held together: takes from
	// the stage alone do not update it, so it is never less than the stage
	// holds, and the bound counts it (fullLocked). It fits beside filled
	// and above, on mu's line, because MaxLength caps max at MaxInt32.
	staged  int32
	n       int // messages in levels; the staged ones are not counted
	levels  [levels]ring
	waiters []*Consumer
	room    chan struct{} // closed when a full queue is down to max/2; nil while no publisher waits
	name    string
	max     int // Broker.maxLength
	st      *stage
	_       [24]byte
}

// stage holds the messages of one priority level that a take moved out
// of a queue in one step, oldest first: consumers take them under the
// stage's mutex, on cache lines of their own, and leave the queue's mutex
// and lines to its producers.
//
// Before, every take locked the queue's mutex, whose cache line a
// producer publishing all the time keeps on its core: at concurrency 2 a
// worker takes 8 messages at a time (its prefetch window), so the line
// crossed between the cores twice per 8 tasks, and the take held the
// mutex while it fetched the ring's slots from the producer's core. Now a
// take that finds the stage empty moves the whole of the highest level
// into it (the ring is swapped, not copied: the stage's empty ring becomes
// the level's), and the takes after it do not touch the queue until the
// stage is empty again. Staged messages belong to consumers alone, so a
// take can also look at the ones next in line and ask the processor to
// load them (ring.prefetch): the next take finds the slots and the
// messages' lines in its caches instead of waiting for them one after
// the other.
//
// Measured with engine's BenchmarkEngineMemoryNoop on the 2-vCPU KVM
// (AMD EPYC) VMs, medians of per-pair ratios of interleaved runs against
// the queue without a stage: c=2 x0.84 ns/task in the far vCPU placement
// (18 pairs, 17 faster) and x0.92 in the near one (32 pairs); c=64 x1.02
// far and x1.01 near. The stage alone, without the prefetch, measured
// x0.76-1.06 far in sets of 2-5 pairs: the prefetch is most of the gain.
// On one processor, where no line moves, it costs 3 % (75 more
// instructions per task).
//
// A message queued at a higher level than the staged ones sets preempt,
// and the next take looks at the queue first: priority order holds as
// before.
//
// A queue with a MaxLength stages too. Its bound counts the staged
// messages as of the last take that locked the queue (queue.staged), never
// fewer than the stage holds, so a publisher never finds room that is not
// there. While a publisher waits for room, roomWanted is set and a take
// from the stage locks the queue to bring that count up to date and wake
// the publisher once the queue is down to half its bound. Before, bounded
// queues did not stage, and cost about twice what unbounded ones did: with
// MaxLength(4096), engine's no-op benchmark at c=2 went from 197-231 to
// 106-131 ns/task (4 interleaved pairs, Intel Xeon 2-vCPU VM), and
// `celerity bench`'s throughput scenario, which bounds its queue, from
// 3.54-3.76 to 5.02-5.17 M tasks/s (3 pairs).
type stage struct {
	mu         sync.Mutex
	preempt    atomic.Bool // a higher level than lvl has messages in the queue
	roomWanted atomic.Bool // a publisher waits for room (queue.room is set)
	lvl        int
	ring       ring
}

// NewBroker returns an empty broker.
func NewBroker(opts ...Option) *Broker {
	b := &Broker{}
	for _, o := range opts {
		o(b)
	}
	b.queues.Store(&queueSet{})
	return b
}

var (
	_ transport.Broker       = (*Broker)(nil)
	_ transport.OnePublisher = (*Broker)(nil)
	_ transport.Poller       = (*Consumer)(nil)
)

// queue returns the named queue, creating it.
func (b *Broker) queue(name []byte) *queue {
	if q := b.queues.Load().find(name); q != nil {
		return q
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.queues.Load()
	if q := old.find(name); q != nil {
		return q
	}
	next := &queueSet{byName: make(map[string]*queue, len(old.byName)+1)}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	q := &queue{name: string(name), max: b.maxLength, st: &stage{}, above: levels - 1}
	next.byName[q.name] = q
	if len(next.byName) <= fewQueues {
		next.few = append(slices.Clone(old.few), q)
	}
	b.queues.Store(next)
	return q
}

// lockPolls is how many times queue.lock retries TryLock before it waits
// in Lock: a microsecond or so, longer than a consumer holds the mutex to
// take a batch, which can take a few cache misses in a row. With 64 polls
// (16 and 256 measured alike then), a fifth of the consumers' takes in
// engine's BenchmarkEngineMemoryNoop at c=2 still sent the producer into
// Lock's spin, 26 000 times per million tasks; with 512, about 20 times.
// c=2 ns/task 148.6 -> 140.9, c=64 124.7 -> 119.7 (medians of 9-10 and 6
// interleaved runs in the VM's near placement); 1024 and 2048 measured no
// better. Polling in the consumers' takes as well gained nothing (9 runs
// with 64 polls; 8 with 512, and it was slower in the far placement).
const lockPolls = 512

// lock takes q.mu, polling TryLock before Lock: see Broker on why a
// producer does not wait in sync.Mutex's spin. A TryLock that fails only
// reads the mutex's word: no atomic write for the holder to wait on.
func (q *queue) lock() {
	for range lockPolls {
		if q.mu.TryLock() {
			return
		}
	}
	q.mu.Lock()
}

// fullLocked reports whether a publisher must wait before it queues
// another message on q. q.mu is held.
func (q *queue) fullLocked() bool { return q.max > 0 && q.n+int(q.staged) >= q.max }

// waitRoomLocked waits, with q.mu released, until consumers have taken q
// down to half of its bound, then takes q.mu again; it returns ErrClosed
// or ctx.Err() (with q.mu held) if the broker is closed or ctx is done
// first. q.mu is held.
func (q *queue) waitRoomLocked(ctx context.Context, b *Broker) error {
	if b.closed.Load() { // Close set it before it took q.mu to wake us
		return ErrClosed
	}
	if q.room == nil {
		q.room = make(chan struct{})
		q.st.roomWanted.Store(true)
	}
	room := q.room
	q.mu.Unlock()
	var err error
	select {
	case <-room:
		if b.closed.Load() {
			err = ErrClosed
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	q.lock()
	return err
}

// tookLocked wakes the publishers waiting for room once q is down to half
// of its bound. q.mu is held, and q.staged is up to date (stagedLocked).
func (q *queue) tookLocked() {
	if q.room != nil && q.n+int(q.staged) <= q.max/2 {
		q.openRoomLocked()
	}
}

// openRoomLocked wakes the publishers waiting for room. q.mu is held.
func (q *queue) openRoomLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
		q.st.roomWanted.Store(false)
	}
}

// wakeLocked tells the waiting consumers that q has messages. q.mu is held.
// With none waiting it writes nothing: every publish calls it.
func (q *queue) wakeLocked() {
	if len(q.waiters) == 0 {
		return
	}
	for _, c := range q.waiters {
		c.notify()
	}
	clear(q.waiters)
	q.waiters = q.waiters[:0]
}

// Publish queues each message on the queue named by its routing key (the
// exchange is not consulted: every queue behaves as bound to a direct
// exchange of its own name and to the default exchange). Consecutive
// messages for one queue are queued under one lock. With MaxLength, a
// full queue makes Publish wait (see MaxLength).
func (b *Broker) Publish(ctx context.Context, msgs ...*codec.Message) error {
	if b.closed.Load() {
		releaseAll(msgs)
		return ErrClosed
	}
	for i := 0; i < len(msgs); {
		q := b.queue(msgs[i].RoutingKey)
		q.lock()
		for ; i < len(msgs) && string(msgs[i].RoutingKey) == q.name; i++ {
			for q.fullLocked() {
				q.wakeLocked() // the messages queued so far
				if err := q.waitRoomLocked(ctx, b); err != nil {
					q.mu.Unlock()
					releaseAll(msgs[i:])
					return err
				}
			}
			q.pushLocked(msgs[i])
		}
		q.wakeLocked()
		q.mu.Unlock()
	}
	return nil
}

// PublishOne implements transport.OnePublisher: Publish for one message.
func (b *Broker) PublishOne(ctx context.Context, m *codec.Message) error {
	if b.closed.Load() {
		codec.ReleaseMessage(m)
		return ErrClosed
	}
	q := b.queue(m.RoutingKey)
	q.lock()
	for q.fullLocked() {
		if err := q.waitRoomLocked(ctx, b); err != nil {
			q.mu.Unlock()
			codec.ReleaseMessage(m)
			return err
		}
	}
	q.pushLocked(m)
	q.wakeLocked()
	q.mu.Unlock()
	return nil
}

func releaseAll(msgs []*codec.Message) {
	for _, m := range msgs {
		codec.ReleaseMessage(m)
	}
}

// level returns the priority level m is queued at: its priority, with
// those above 9 at 9.
func level(m *codec.Message) int { return min(int(m.Priority), levels-1) }

// pushLocked queues m behind the messages of its priority. q.mu is held.
func (q *queue) pushLocked(m *codec.Message) {
	lvl := level(m)
	q.levels[lvl].pushBack(m)
	q.filledLocked(lvl)
}

// pushFrontLocked queues m ahead of the messages of its priority in the
// queue proper (requeue puts it in the stage when the stage holds its
// level). q.mu is held.
func (q *queue) pushFrontLocked(m *codec.Message) {
	lvl := level(m)
	q.levels[lvl].pushFront(m)
	q.filledLocked(lvl)
}

// filledLocked counts a message queued at level lvl, and tells the stage
// if lvl is above the staged level. q.mu is held.
func (q *queue) filledLocked(lvl int) {
	q.filled |= 1 << lvl
	q.n++
	if int8(lvl) > q.above {
		q.st.preempt.Store(true)
		q.above = levels - 1
	}
}

// popLocked moves up to len(dst) messages of level lvl into dst, in
// order, and returns how many it moved. q.mu is held.
func (q *queue) popLocked(lvl int, dst []*codec.Message) int {
	r := &q.levels[lvl]
	k := r.popFrontInto(dst)
	if r.len() == 0 {
		q.filled &^= 1 << lvl
	}
	q.n -= k
	return k
}

// Len returns the number of ready (not fetched) messages in queue.
func (b *Broker) Len(queue string) int {
	q := b.queues.Load().byName[queue]
	if q == nil {
		return 0
	}
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + q.st.ring.len()
}

// Purge drops the ready messages of queue and returns how many there were.
func (b *Broker) Purge(queue string) int {
	q := b.queues.Load().byName[queue]
	if q == nil {
		return 0
	}
	s := q.st
	s.mu.Lock()
	defer s.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.n + s.ring.len()
	for s.ring.len() > 0 {
		codec.ReleaseMessage(s.ring.popFront())
	}
	for i := range q.levels {
		for q.levels[i].len() > 0 {
			codec.ReleaseMessage(q.levels[i].popFront())
		}
	}
	q.n, q.filled = 0, 0
	q.stagedLocked()
	q.tookLocked()
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
	if b.closed.Load() {
		return nil, ErrClosed
	}
	c := &Consumer{b: b, prefetch: prefetch, wake: make(chan struct{}, 1), acked: make(chan struct{}, 1)}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(queues))) {
		c.queues = append(c.queues, b.queue([]byte(name)))
	}
	return c, nil
}

// Close drops every queued message; consumers' Fetch calls return ErrClosed.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	for _, q := range b.queues.Load().byName {
		q.mu.Lock()
		q.wakeLocked()
		q.openRoomLocked() // publishers waiting for room return ErrClosed
		q.mu.Unlock()
	}
	return nil
}

// Consumer takes messages from a Broker's queues. See transport.Consumer.
type Consumer struct {
	b      *Broker
	queues []*queue      // sorted by name: the order their mutexes are taken in; under mu
	wake   chan struct{} // a queue got a message
	acked  chan struct{} // an ack made room in the prefetch window

	mu       sync.Mutex
	next     int              // round-robin start
	prefetch int              // 0 = unlimited
	unacked  []*codec.Message // slot i holds the message with Tag i+1
	free     []uint64         // free slot tags
	held     int
	closed   bool
}

func (c *Consumer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Consumer) signalRoom() {
	select {
	case c.acked <- struct{}{}:
	default:
	}
}

// Fetch implements transport.Consumer.
func (c *Consumer) Fetch(ctx context.Context, dst []*codec.Message) (int, error) {
	for {
		if n, err := c.Poll(dst); n > 0 || err != nil {
			return n, err
		}
		if err := c.Wait(ctx); err != nil {
			return 0, err
		}
	}
}

// Poll implements transport.Poller: Fetch without the wait.
func (c *Consumer) Poll(dst []*codec.Message) (int, error) {
	if c.b.closed.Load() {
		return 0, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	room := len(dst)
	if c.prefetch > 0 {
		room = min(room, c.prefetch-c.held)
	}
	if room <= 0 {
		return 0, nil
	}
	return c.takeLocked(dst[:room]), nil
}

// Wait implements transport.Poller: it returns once the prefetch bound
// leaves room and one of c's queues has a message.
func (c *Consumer) Wait(ctx context.Context) error {
	for {
		if c.b.closed.Load() {
			return ErrClosed
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		wait := c.acked
		if c.prefetch == 0 || c.held < c.prefetch {
			wait = c.wake
			if c.waitLocked() { // a message is ready
				c.mu.Unlock()
				return nil
			}
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			c.unwait()
			return ctx.Err()
		}
	}
}

// waitLocked registers c as a waiter of each of its queues, unless one of
// them has a message (it then reports true). c.mu is held.
func (c *Consumer) waitLocked() bool {
	for _, q := range c.queues {
		q.st.mu.Lock()
		q.mu.Lock()
		ready := q.n > 0 || q.st.ring.len() > 0
		if !ready && !slices.Contains(q.waiters, c) {
			q.waiters = append(q.waiters, c)
		}
		q.mu.Unlock()
		q.st.mu.Unlock()
		if ready {
			return true
		}
	}
	return false
}

// takeLocked moves up to len(dst) messages into dst: highest priority
// first; within a level, one message from each queue in turn, starting
// with a different queue on every call. c.mu is held; it takes the stage
// and queue mutexes (all stages, then all queues, each in name order) only
// while it moves pointers: the messages themselves (their tags) are
// touched after, so that a producer publishing meanwhile waits for no
// cache miss on a message written by another core.
func (c *Consumer) takeLocked(dst []*codec.Message) int {
	var n int
	if len(c.queues) == 1 {
		n = c.queues[0].take(dst)
	} else {
		for _, q := range c.queues {
			q.st.mu.Lock()
		}
		for _, q := range c.queues {
			q.mu.Lock()
		}
		n = c.takeRoundRobinLocked(dst)
		for _, q := range c.queues {
			q.stagedLocked()
			q.tookLocked()
			q.mu.Unlock()
		}
		for _, q := range c.queues {
			q.st.mu.Unlock()
		}
	}
	for _, m := range dst[:n] {
		c.track(m)
	}
	if n > 0 && len(c.queues) > 1 {
		c.next = (c.next + 1) % len(c.queues)
	}
	return n
}

// take moves up to len(dst) messages of q into dst, highest priority
// first: from the stage alone while it has them and no higher level has
// come since it was filled, else from the stage and the queue (takeQueued).
// The messages next in line are then staged, for consumers alone to take:
// take asks the processor to load them (ring.prefetch), and the next take
// finds them in its caches (see stage).
func (q *queue) take(dst []*codec.Message) int {
	s := q.st
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.ring.len() > 0 && !s.preempt.Load() {
		n = s.ring.popFrontInto(dst)
	}
	if n < len(dst) {
		n += q.takeQueued(dst[n:])
	} else if s.roomWanted.Load() {
		q.mu.Lock()
		q.stagedLocked()
		q.tookLocked()
		q.mu.Unlock()
	}
	s.ring.prefetch(len(dst))
	return n
}

// takeQueued moves up to len(dst) messages of q, staged or not, into dst,
// highest priority first, after staging the highest level if the stage is
// empty. The stage's mutex is held; takeQueued takes q's.
func (q *queue) takeQueued(dst []*codec.Message) int {
	s := q.st
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.preempt.Load() {
		s.preempt.Store(false)
	}
	if s.ring.len() == 0 && q.filled != 0 {
		// The level's ring moves whole, and the stage's empty one (its
		// buffer) takes its place.
		lvl := bits.Len16(q.filled) - 1
		s.ring, q.levels[lvl] = q.levels[lvl], s.ring
		s.lvl = lvl
		q.filled &^= 1 << lvl
		q.n -= s.ring.len()
	}
	n := 0
	for n < len(dst) {
		filled := q.allFilledLocked()
		if filled == 0 {
			break
		}
		n += q.popBothLocked(bits.Len16(filled)-1, dst[n:])
	}
	q.stagedLocked()
	q.tookLocked()
	return n
}

// allFilledLocked returns q.filled with the staged level's bit added. The
// stage's and q's mutexes are held.
func (q *queue) allFilledLocked() uint16 {
	if q.st.ring.len() > 0 {
		return q.filled | 1<<q.st.lvl
	}
	return q.filled
}

// popBothLocked moves up to len(dst) messages of level lvl into dst, the
// staged ones first, and returns how many it moved. The stage's and q's
// mutexes are held.
func (q *queue) popBothLocked(lvl int, dst []*codec.Message) int {
	n := 0
	if s := q.st; s.ring.len() > 0 && s.lvl == lvl {
		n = s.ring.popFrontInto(dst)
	}
	if n < len(dst) && q.filled&(1<<lvl) != 0 {
		n += q.popLocked(lvl, dst[n:])
	}
	return n
}

// stagedLocked brings q.staged up to date and sets q.above after a take:
// the staged level while the stage has messages. The stage's and q's
// mutexes are held.
func (q *queue) stagedLocked() {
	if q.max > 0 {
		q.staged = int32(q.st.ring.len())
	}
	q.above = levels - 1
	if s := q.st; s.ring.len() > 0 && !s.preempt.Load() {
		q.above = int8(s.lvl)
	}
}

// takeRoundRobinLocked moves up to len(dst) messages of c's queues into
// dst: highest priority first; within a level, one message from each
// queue in turn, starting with c.next, each queue's staged messages
// before its others. The stage and queue mutexes are held.
func (c *Consumer) takeRoundRobinLocked(dst []*codec.Message) int {
	var filled uint16
	for _, q := range c.queues {
		filled |= q.allFilledLocked()
	}
	n := 0
	for ; n < len(dst) && filled != 0; filled &^= 1 << (bits.Len16(filled) - 1) {
		lvl := bits.Len16(filled) - 1
		for progress := true; progress && n < len(dst); {
			progress = false
			for k := 0; k < len(c.queues) && n < len(dst); k++ {
				q := c.queues[(c.next+k)%len(c.queues)]
				if q.allFilledLocked()&(1<<lvl) == 0 {
					continue
				}
				n += q.popBothLocked(lvl, dst[n:n+1])
				progress = true
			}
		}
	}
	return n
}

// track records m as unacknowledged, giving it a slot tag. c.mu is held.
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

// untrack forgets m; false if m is not held by c. c.mu is held.
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

// unwait removes c from its queues' waiters.
func (c *Consumer) unwait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queues {
		q.unwait(c)
	}
}

// unwait removes c from q's waiters.
func (q *queue) unwait(c *Consumer) {
	q.mu.Lock()
	if i := slices.Index(q.waiters, c); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
	}
	q.mu.Unlock()
}

// AddQueue implements transport.Consumer.
func (c *Consumer) AddQueue(_ context.Context, name string) error {
	if name == "" {
		return errors.New("memory: add queue: empty name")
	}
	q := c.b.queue([]byte(name))
	c.mu.Lock()
	i, found := slices.BinarySearchFunc(c.queues, name, func(q *queue, name string) int { return strings.Compare(q.name, name) })
	if !found {
		c.queues = slices.Insert(c.queues, i, q)
	}
	c.mu.Unlock()
	c.notify() // a waiting Fetch looks again, at the new queue too
	return nil
}

// CancelQueue implements transport.Consumer.
func (c *Consumer) CancelQueue(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.queues, func(q *queue) bool { return q.name == name })
	if i < 0 {
		return nil
	}
	q := c.queues[i]
	c.queues = slices.Delete(c.queues, i, i+1)
	c.next = 0
	q.unwait(c)
	return nil
}

// SetPrefetch implements transport.Consumer.
func (c *Consumer) SetPrefetch(n int) error {
	if n < 0 {
		return errors.New("memory: negative prefetch")
	}
	c.mu.Lock()
	c.prefetch = n
	c.mu.Unlock()
	c.signalRoom()
	return nil
}

// ErrNotHeld is returned by Ack and Reject for a message this consumer
// does not hold (already acknowledged, or fetched by another consumer).
var ErrNotHeld = errors.New("memory: message not held by this consumer")

// Ack implements transport.Consumer. It touches only the consumer's own
// state: producers publishing meanwhile do not wait for it.
func (c *Consumer) Ack(msgs ...*codec.Message) error {
	c.mu.Lock()
	var err error
	for _, m := range msgs {
		if !c.untrack(m) {
			err = ErrNotHeld
		}
	}
	c.mu.Unlock()
	c.signalRoom()
	return err
}

// Reject implements transport.Consumer. A requeued message goes back, as
// a copy flagged Redelivered, to the front of its queue.
func (c *Consumer) Reject(requeue bool, msgs ...*codec.Message) error {
	c.mu.Lock()
	var err error
	for _, m := range msgs {
		if !c.untrack(m) {
			err = ErrNotHeld
			continue
		}
		if requeue {
			c.requeue(m.Clone())
		}
	}
	c.mu.Unlock()
	c.signalRoom()
	return err
}

// requeue puts m back at the front of its queue. c.mu may be held.
func (c *Consumer) requeue(m *codec.Message) {
	m.Redelivered = true
	m.Tag = 0
	q := c.b.queue(m.RoutingKey)
	s := q.st
	s.mu.Lock()
	q.mu.Lock()
	if s.ring.len() > 0 && s.lvl == level(m) {
		s.ring.pushFront(m) // ahead of the staged messages, which are older than the queue's
	} else {
		q.pushFrontLocked(m)
	}
	q.stagedLocked()
	q.wakeLocked()
	q.mu.Unlock()
	s.mu.Unlock()
}

// Close implements transport.Consumer: copies of the unacknowledged
// messages are requeued at the front of their queues, oldest fetched first
// in line.
func (c *Consumer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.notify()
	if c.b.closed.Load() {
		return nil
	}
	// Requeue newest first so that the oldest ends up at the front.
	for i := len(c.unacked) - 1; i >= 0; i-- {
		if m := c.unacked[i]; m != nil {
			c.unacked[i] = nil
			c.requeue(m.Clone())
		}
	}
	c.held = 0
	return nil
}
