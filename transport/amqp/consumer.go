package amqp

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// tagBits is how many low bits of codec.Message.Tag hold the AMQP delivery
// tag; the bits above hold the connection generation, so that an ack for
// a delivery of a connection that has since died is recognized and
// dropped (RabbitMQ has requeued that delivery already).
const tagBits = 40

func splitTag(t uint64) (gen, tag uint64) { return t >> tagBits, t & (1<<tagBits - 1) }

// Consumer receives task messages from RabbitMQ queues on a connection of
// its own. Fetch has one caller at a time; Ack, Reject, SetPrefetch and
// Close may be called concurrently with it and with each other.
//
// Acknowledgements are coalesced (see WithAckBatch) into basic.ack frames
// with multiple=true that never cover a delivery the caller has not
// finished. When the connection or channel is lost, Fetch reconnects with
// backoff, redeclares the queues and resumes; RabbitMQ redelivers what was
// unacknowledged (flagged Redelivered), and acks or rejects of messages of
// the lost connection are dropped.
type Consumer struct {
	b *Broker

	// topo is the queue set wanted, replaced whole under topoMu by AddQueue
	// and CancelQueue; Fetch applies it to the session (sync). applied
	// counts the topologies applied and appliedCh is closed (and replaced)
	// at each, under topoMu.
	topo      atomic.Pointer[topology]
	topoMu    sync.Mutex
	applied   uint64
	appliedCh chan struct{}
	change    chan struct{} // signalled when topo changes

	// fetchMu is held by Fetch: whoever holds it owns the session's
	// deliveries and the Fetch state below.
	fetchMu sync.Mutex

	closed    chan struct{}
	closeOnce sync.Once
	room      chan struct{} // signalled when the prefetch window may have room

	mu       sync.Mutex // guards the fields below
	sess     *consSession
	gen      uint64
	prefetch int
	handed   int // messages of this generation fetched and not yet settled
	acks     ackTracker
	timer    *time.Timer
	timerOn  bool

	// Fetch's own state (one Fetch at a time).
	rr           int
	fails        int
	batch        []delivery // deliveries to decode, in delivery-tag order
	stash        []delivery // deliveries that overtook a lower tag
	expect       uint64     // the next delivery tag in order
	stashGen     uint64     // the session stash and expect belong to
	parked       []parkItem
	parkOffUntil time.Time
}

// topology is a consumer's queue set. A queue keeps its index for the
// consumer's life (a cancelled queue added again gets it back), so that a
// delivery's queue index stays meaningful across changes.
type topology struct {
	queues []consumedQueue
	seq    uint64 // 1 for the first topology, +1 for each change
}

type consumedQueue struct {
	spec   Queue
	active bool
}

// consSession is one consuming connection and channel.
type consSession struct {
	conn       *amqp091.Connection
	ch         *amqp091.Channel
	topo       *topology                 // the topology applied
	queues     []string                  // queue names by index
	deliveries []<-chan amqp091.Delivery // by queue index; nil: not consumed
	tags       []string                  // consumer tags by queue index
	ntags      int                       // consumer tags issued
	only       int                       // the one queue consumed, or -1
	cases      []reflect.SelectCase      // the fixed cases (see case*), then deliveries
	dead       chan struct{}
	gen        uint64
}

// The fixed select cases of consSession.cases; the deliveries follow.
const (
	caseDead = iota
	caseClosed
	caseCtx
	caseGap
	caseChange
	caseDeliveries
)

type delivery struct {
	d amqp091.Delivery
	q int // index of the queue it came from
}

func (s *consSession) alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

func newConsumer(b *Broker, queues []string, prefetch int) *Consumer {
	c := &Consumer{
		b:         b,
		closed:    make(chan struct{}),
		room:      make(chan struct{}, 1),
		change:    make(chan struct{}, 1),
		appliedCh: make(chan struct{}),
		prefetch:  max(prefetch, 0),
	}
	t := &topology{seq: 1}
	for _, q := range queues {
		if !slices.ContainsFunc(t.queues, func(x consumedQueue) bool { return x.spec.Name == q }) {
			t.queues = append(t.queues, consumedQueue{spec: TaskQueue(q, b.cfg.maxPriority), active: true})
		}
	}
	c.topo.Store(t)
	return c
}

// names returns the names of the queues consumed.
func (t *topology) names() []string {
	var out []string
	for _, q := range t.queues {
		if q.active {
			out = append(out, q.spec.Name)
		}
	}
	return out
}

// connect opens a session and makes it current.
func (c *Consumer) connect(ctx context.Context) error {
	c.mu.Lock()
	prefetch := c.prefetch
	c.mu.Unlock()
	s, err := c.open(ctx, prefetch)
	if err != nil {
		return err
	}
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		s.conn.Close()
		return ErrClosed
	default:
	}
	old := c.sess
	c.gen++
	s.gen = c.gen
	c.sess = s
	c.handed = 0
	c.acks.reset()
	if c.prefetch != prefetch { // changed while we dialed
		s.ch.Qos(c.prefetch, 0, true)
	}
	c.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	c.markApplied(s.topo)
	c.signalRoom()
	return nil
}

// open dials, declares the queues, sets basic.qos and starts one
// basic.consume per queue.
func (c *Consumer) open(ctx context.Context, prefetch int) (*consSession, error) {
	cfg := &c.b.cfg
	t := c.topo.Load()
	names := t.names()
	conn, err := cfg.dial(ctx, c.b.url, "consumer")
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*consSession, error) {
		conn.Close()
		return nil, fmt.Errorf("amqp: consume %v: %s: %w", names, what, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	s := &consSession{conn: conn, ch: ch, dead: make(chan struct{}), topo: t, only: -1}
	connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	go func() {
		var why *amqp091.Error
		select {
		case why = <-connClosed:
		case why = <-chClosed:
		}
		if why != nil {
			cfg.log.Warn("amqp: consumer connection lost", "queues", names, "code", why.Code, "reason", why.Reason)
		}
		close(s.dead)
		conn.Close()
	}()
	nq := len(t.queues)
	s.queues = make([]string, nq)
	s.deliveries = make([]<-chan amqp091.Delivery, nq)
	s.tags = make([]string, nq)
	backlog := make([]int, nq)
	var order []int
	for i, q := range t.queues {
		s.queues[i] = q.spec.Name
		if !q.active {
			continue
		}
		n, err := declareQueue(ch, q.spec)
		if err != nil {
			return fail("declare", err)
		}
		backlog[i] = n
		order = append(order, i)
	}
	// With several queues, the first consumer would get its whole backlog
	// before the next one is registered. So deliveries are held (prefetch
	// 1) until every queue has its consumer, then the window opens; and
	// the queues are subscribed shortest backlog first, so that the one
	// delivery let through meanwhile comes from the queue least likely to
	// be served otherwise.
	first := prefetch
	if len(order) > 1 && prefetch != 1 {
		first = 1
	}
	if err := ch.Qos(first, 0, true); err != nil {
		return fail("basic.qos", err)
	}
	slices.SortStableFunc(order, func(a, b int) int { return backlog[a] - backlog[b] })
	for _, i := range order {
		if err := s.consume(i); err != nil {
			return fail("basic.consume", err)
		}
	}
	if first != prefetch {
		if err := ch.Qos(prefetch, 0, true); err != nil {
			return fail("basic.qos", err)
		}
	}
	s.cases = make([]reflect.SelectCase, caseDeliveries, caseDeliveries+nq)
	for i := range s.cases {
		s.cases[i].Dir = reflect.SelectRecv
	}
	s.cases[caseDead].Chan = reflect.ValueOf(s.dead)
	s.cases[caseClosed].Chan = reflect.ValueOf(c.closed)
	s.cases[caseChange].Chan = reflect.ValueOf(c.change)
	s.casesChanged()
	return s, nil
}

// consume starts a basic.consume of queue i under a consumer tag of its
// own (basic.cancel needs it).
func (s *consSession) consume(i int) error {
	s.ntags++
	tag := "celerity." + strconv.Itoa(i) + "." + strconv.Itoa(s.ntags)
	d, err := s.ch.Consume(s.queues[i], tag, false, false, false, false, nil)
	if err != nil {
		return err
	}
	s.deliveries[i], s.tags[i] = d, tag
	return nil
}

// casesChanged rebuilds the delivery select cases and s.only after
// s.deliveries changed.
func (s *consSession) casesChanged() {
	s.cases = s.cases[:caseDeliveries]
	s.only = -1
	n := 0
	for i, d := range s.deliveries {
		c := reflect.SelectCase{Dir: reflect.SelectRecv}
		if d != nil {
			c.Chan = reflect.ValueOf(d)
			s.only = i
			n++
		}
		s.cases = append(s.cases, c)
	}
	if n != 1 {
		s.only = -1
	}
}

// sync applies the wanted topology to s: basic.consume for queues added,
// basic.cancel for queues cancelled. The deliveries of a cancelled queue
// that were already on their way are kept (stashed) and handed out as
// usual. The caller holds fetchMu. An error leaves the session broken;
// the caller closes it, and the next session opens with the wanted
// topology.
func (c *Consumer) sync(s *consSession) error {
	t := c.topo.Load()
	if t == s.topo {
		return nil
	}
	if c.stashGen != s.gen {
		clear(c.stash)
		c.stash, c.expect, c.stashGen = c.stash[:0], 1, s.gen
	}
	for i, q := range t.queues {
		if i == len(s.deliveries) {
			s.queues = append(s.queues, q.spec.Name)
			s.deliveries = append(s.deliveries, nil)
			s.tags = append(s.tags, "")
		}
		switch {
		case q.active && s.deliveries[i] == nil:
			if _, err := declareQueue(s.ch, q.spec); err != nil {
				return err
			}
			if err := s.consume(i); err != nil {
				return err
			}
		case !q.active && s.deliveries[i] != nil:
			// basic.cancel waits for cancel-ok; amqp091-go then closes
			// the delivery channel after what it had buffered.
			if err := s.ch.Cancel(s.tags[i], false); err != nil {
				return err
			}
			for d := range s.deliveries[i] {
				c.stash = append(c.stash, delivery{d, i})
			}
			s.deliveries[i], s.tags[i] = nil, ""
		}
	}
	s.topo = t
	s.casesChanged()
	c.markApplied(t)
	return nil
}

// markApplied records that topology t is in effect.
func (c *Consumer) markApplied(t *topology) {
	c.topoMu.Lock()
	if t.seq > c.applied {
		c.applied = t.seq
		close(c.appliedCh)
		c.appliedCh = make(chan struct{})
	}
	c.topoMu.Unlock()
}

// AddQueue implements transport.Consumer: the queue is declared as Celery
// declares task queues (an error here is AddQueue's), then consumed.
// AddQueue returns once Fetch applied the change, or ctx ends.
func (c *Consumer) AddQueue(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("amqp: add queue: empty name")
	}
	spec := TaskQueue(name, c.b.cfg.maxPriority)
	if err := c.b.Declare(ctx, spec); err != nil {
		return fmt.Errorf("amqp: add queue %s: %w", name, err)
	}
	return c.changeTopology(ctx, consumedQueue{spec: spec, active: true})
}

// CancelQueue implements transport.Consumer: basic.cancel of the queue's
// consumer. It returns once the cancel is done (deliveries already on
// their way are kept for Fetch), or ctx ends.
func (c *Consumer) CancelQueue(ctx context.Context, name string) error {
	return c.changeTopology(ctx, consumedQueue{spec: Queue{Name: name}, active: false})
}

// changeTopology sets a queue active or not and waits until the change is
// applied: by this goroutine when no Fetch is running, else by Fetch.
func (c *Consumer) changeTopology(ctx context.Context, q consumedQueue) error {
	c.topoMu.Lock()
	old := c.topo.Load()
	i := slices.IndexFunc(old.queues, func(x consumedQueue) bool { return x.spec.Name == q.spec.Name })
	if (i < 0 && !q.active) || (i >= 0 && old.queues[i].active == q.active) {
		c.topoMu.Unlock()
		return nil // nothing to change
	}
	t := &topology{queues: slices.Clone(old.queues), seq: old.seq + 1}
	if i < 0 {
		t.queues = append(t.queues, q)
	} else {
		t.queues[i].active = q.active
	}
	c.topo.Store(t)
	c.topoMu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
	if c.fetchMu.TryLock() { // no Fetch running: apply the change here
		s := c.current()
		if s == nil || !s.alive() {
			c.markApplied(t) // nothing is consumed; the next session opens with t
		} else if err := c.sync(s); err != nil {
			s.conn.Close()
			c.markApplied(t)
		}
		c.fetchMu.Unlock()
	}
	for {
		c.topoMu.Lock()
		done, wait := c.applied >= t.seq, c.appliedCh
		c.topoMu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closed:
			return ErrClosed
		}
	}
}

// reconnect replaces a dead session, retrying with backoff until ctx ends
// or the consumer is closed.
func (c *Consumer) reconnect(ctx context.Context) error {
	for {
		if c.fails > 0 && !sleepCtx(ctx, c.closed, c.b.cfg.backoff(c.fails-1)) {
			break
		}
		err := c.connect(ctx)
		if err == nil {
			if c.fails > 0 {
				c.b.cfg.log.Info("amqp: consumer reconnected", "queues", c.topo.Load().names(), "attempts", c.fails)
			}
			c.fails = 0
			return nil
		}
		c.fails++
		c.b.cfg.log.Warn("amqp: consumer reconnect failed", "queues", c.topo.Load().names(), "attempt", c.fails, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	select {
	case <-c.closed:
		return ErrClosed
	default:
		return ctx.Err()
	}
}

func (c *Consumer) current() *consSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// roomFor returns how many messages Fetch may hand out now (at most n).
func (c *Consumer) roomFor(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prefetch > 0 {
		return max(0, min(n, c.prefetch-c.handed))
	}
	return n
}

func (c *Consumer) signalRoom() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// Fetch implements transport.Consumer: it waits for at least one message
// (reconnecting if need be) and decodes up to len(dst) of them, taking
// them round-robin from the queues. Messages RabbitMQ delivered that do
// not decode as Celery task messages are rejected without requeue and
// logged; tasks due further away than the ETA threshold are parked in a
// delay queue and never returned (see the package documentation).
func (c *Consumer) Fetch(ctx context.Context, dst []*codec.Message) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	for {
		select {
		case <-c.closed:
			return 0, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		s := c.current()
		if s == nil || !s.alive() {
			if err := c.reconnect(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.sync(s); err != nil {
			c.b.cfg.log.Warn("amqp: consumer could not change its queues; reconnecting", "queues", c.topo.Load().names(), "err", err)
			s.conn.Close()
			c.markApplied(c.topo.Load())
			continue
		}
		room := c.roomFor(len(dst))
		if room == 0 {
			select {
			case <-c.room:
			case <-c.change:
			case <-s.dead:
			case <-ctx.Done():
			case <-c.closed:
			}
			continue
		}
		c.gather(ctx, s, room)
		if n := c.process(s, dst); n > 0 {
			return n, nil
		}
	}
}

// gather fills c.batch with up to limit deliveries, waiting for the first
// one. Deliveries are handed out in delivery-tag order, which is the
// order RabbitMQ sent them in: amqp091-go passes each consumer's
// deliveries through a goroutine of its own, so with several queues a
// delivery can overtake one with a lower tag that is already on its way.
// A delivery that overtook waits in c.stash until the lower tags arrive
// (promptly: they were read from the socket before it), so a queue with a
// backlog cannot crowd out a queue RabbitMQ served in between.
func (c *Consumer) gather(ctx context.Context, s *consSession, limit int) {
	if c.stashGen != s.gen {
		clear(c.stash)
		c.stash, c.expect, c.stashGen = c.stash[:0], 1, s.gen
	}
	c.unstash(limit)
	c.take(s, limit)
	for len(c.batch) == 0 {
		var gap *time.Timer
		var gapC <-chan time.Time
		if len(c.stash) > 0 {
			// A lower tag is on its way, or was dropped by amqp091-go (a
			// delivery for a consumer it no longer knows): do not wait long.
			gap = time.NewTimer(gapWait)
			gapC = gap.C
		}
		d, q, ok, timedOut := c.wait(ctx, s, gapC)
		if gap != nil {
			gap.Stop()
		}
		if timedOut {
			c.expect = c.stash[0].d.DeliveryTag
			for _, x := range c.stash[1:] {
				c.expect = min(c.expect, x.d.DeliveryTag)
			}
			c.unstash(limit)
			continue
		}
		if !ok {
			return
		}
		c.accept(d, q, limit)
		c.take(s, limit)
	}
}

// gapWait bounds the wait for a delivery tag that was overtaken.
const gapWait = 100 * time.Millisecond

// accept puts d into c.batch if it is the next tag in order, else into
// c.stash.
func (c *Consumer) accept(d amqp091.Delivery, q, limit int) {
	if d.DeliveryTag > c.expect {
		c.stash = append(c.stash, delivery{d, q})
		return
	}
	c.batch = append(c.batch, delivery{d, q})
	c.expect = max(c.expect, d.DeliveryTag+1)
	c.unstash(limit)
}

// unstash moves stashed deliveries that are next in order to c.batch.
func (c *Consumer) unstash(limit int) {
	for moved := true; moved && len(c.stash) > 0 && len(c.batch) < limit; {
		moved = false
		for i, x := range c.stash {
			if x.d.DeliveryTag <= c.expect {
				c.batch = append(c.batch, x)
				c.expect = max(c.expect, x.d.DeliveryTag+1)
				c.stash = slices.Delete(c.stash, i, i+1)
				moved = true
				break
			}
		}
	}
}

// take moves deliveries that are ready into c.batch without waiting,
// one per queue in turn, until it holds limit.
func (c *Consumer) take(s *consSession, limit int) {
	nq := len(s.deliveries)
	c.rr++
	for progress := true; progress && len(c.batch) < limit; {
		progress = false
		for j := range nq {
			q := (c.rr + j) % nq
			if s.deliveries[q] == nil {
				continue
			}
			select {
			case d, ok := <-s.deliveries[q]:
				if !ok {
					c.lost(s, q)
					return
				}
				c.accept(d, q, limit)
				progress = true
				if len(c.batch) >= limit {
					return
				}
			default:
			}
		}
	}
}

// wait blocks for one delivery; ok is false if ctx ended, the session or
// consumer closed or gap fired (timedOut) first.
func (c *Consumer) wait(ctx context.Context, s *consSession, gap <-chan time.Time) (d amqp091.Delivery, q int, ok, timedOut bool) {
	if q := s.only; q >= 0 {
		select {
		case d, ok := <-s.deliveries[q]:
			if !ok {
				c.lost(s, q)
			}
			return d, q, ok, false
		case <-gap:
			return d, 0, false, true
		case <-c.change:
		case <-s.dead:
		case <-c.closed:
		case <-ctx.Done():
		}
		return d, 0, false, false
	}
	s.cases[caseCtx].Chan = reflect.ValueOf(ctx.Done())
	if gap != nil {
		s.cases[caseGap].Chan = reflect.ValueOf(gap)
	}
	chosen, v, recvOK := reflect.Select(s.cases)
	s.cases[caseCtx].Chan, s.cases[caseGap].Chan = reflect.Value{}, reflect.Value{}
	switch {
	case chosen == caseGap:
		return d, 0, false, true
	case chosen < caseDeliveries:
		return d, 0, false, false
	case !recvOK:
		c.lost(s, chosen-caseDeliveries)
		return d, 0, false, false
	}
	return v.Interface().(amqp091.Delivery), chosen - caseDeliveries, true, false
}

// lost handles a delivery channel that closed: the channel died, or the
// server cancelled the consumer (its queue was deleted). Either way the
// session is dropped; the next Fetch reconnects and redeclares.
func (c *Consumer) lost(s *consSession, q int) {
	select {
	case <-c.closed:
		return
	default:
	}
	if s.alive() {
		c.b.cfg.log.Warn("amqp: consumer cancelled by the server; reconnecting", "queue", s.queues[q])
	}
	s.conn.Close()
}

// process decodes c.batch into dst and returns how many messages it
// filled.
func (c *Consumer) process(s *consSession, dst []*codec.Message) int {
	now := time.Now()
	routes := c.b.routes.Load()
	n := 0
	c.parked = c.parked[:0]
	for i := range c.batch {
		it := &c.batch[i]
		d := &it.d
		stripDeathHeaders(d.Headers)
		m := codec.AcquireMessage()
		if err := codec.DecodeAMQP(m, d.Headers, propertiesOf(d), d.Body); err != nil {
			codec.ReleaseMessage(m)
			c.rejectGarbage(s, d, it.q, err)
			continue
		}
		m.Exchange = unsafeconv.Bytes(d.Exchange)
		m.RoutingKey = unsafeconv.Bytes(d.RoutingKey)
		m.Redelivered = m.Redelivered || d.Redelivered
		m.Tag = s.gen<<tagBits | d.DeliveryTag
		if wait, ok := c.parkable(m, now); ok {
			c.parked = append(c.parked, parkItem{d: *d, queue: s.queues[it.q], wait: wait})
			codec.ReleaseMessage(m)
			continue
		}
		if routes != nil && len(m.ReplyTo) != 0 && !m.IgnoreResult {
			routes.put(m)
		}
		dst[n] = m
		n++
	}
	clear(c.batch)
	c.batch = c.batch[:0]
	c.mu.Lock()
	if s.gen == c.gen {
		c.handed += n
	}
	c.mu.Unlock()
	if len(c.parked) > 0 {
		c.park(s)
	}
	return n
}

// propertiesOf copies a delivery's basic properties (strings are shared,
// not copied).
func propertiesOf(d *amqp091.Delivery) codec.AMQPProperties {
	return codec.AMQPProperties{
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
	}
}

// rejectGarbage rejects, without requeue, a delivery that is not a task
// message, and logs why: requeueing it would only bring it back.
func (c *Consumer) rejectGarbage(s *consSession, d *amqp091.Delivery, q int, why error) {
	const show = 64
	body := d.Body
	if len(body) > show {
		body = body[:show]
	}
	c.b.cfg.log.Error("amqp: rejecting a message that is not a Celery task (no requeue)",
		"queue", s.queues[q], "delivery_tag", d.DeliveryTag, "correlation_id", d.CorrelationId,
		"content_type", d.ContentType, "err", why, "body_prefix", string(body))
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.gen != c.gen {
		return
	}
	if err := s.ch.Reject(d.DeliveryTag, false); err != nil {
		return // the channel is gone; the message comes back on the next one
	}
	c.acks.settle(d.DeliveryTag, false)
	c.maybeFlushLocked()
}

// deathHeaders are the headers RabbitMQ adds when it dead-letters a
// message back from a delay queue; they are dropped on receipt.
var deathHeaders = [...]string{
	"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
	"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
}

func stripDeathHeaders(h amqp091.Table) {
	if _, ok := h["x-death"]; !ok {
		return
	}
	for _, k := range deathHeaders {
		delete(h, k)
	}
}

// Ack implements transport.Consumer. The acknowledgements are coalesced:
// they go out once enough are pending or after the ack delay.
func (c *Consumer) Ack(msgs ...*codec.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil
	}
	n := 0
	for _, m := range msgs {
		gen, tag := splitTag(m.Tag)
		if gen != c.gen || tag == 0 || c.acks.isSettled(tag) {
			continue // of a lost connection (RabbitMQ requeued it), or settled already
		}
		c.acks.settle(tag, true)
		n++
	}
	if n == 0 {
		return nil
	}
	c.handed -= n
	c.signalRoom()
	return c.maybeFlushLocked()
}

// Reject implements transport.Consumer with one basic.reject per message,
// sent at once.
func (c *Consumer) Reject(requeue bool, msgs ...*codec.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sess
	if s == nil {
		return nil
	}
	var first error
	n := 0
	for _, m := range msgs {
		gen, tag := splitTag(m.Tag)
		if gen != c.gen || tag == 0 || c.acks.isSettled(tag) {
			continue // of a lost connection, or settled already
		}
		if err := s.ch.Reject(tag, requeue); err != nil && first == nil && s.alive() {
			first = errorf("reject", err) // (a lost channel requeues by itself)
		}
		c.acks.settle(tag, false)
		n++
	}
	if n > 0 {
		c.handed -= n
		c.signalRoom()
	}
	if err := c.maybeFlushLocked(); first == nil {
		first = err
	}
	return first
}

// SetPrefetch implements transport.Consumer with a new basic.qos (global,
// as Celery).
func (c *Consumer) SetPrefetch(n int) error {
	n = max(n, 0)
	c.mu.Lock()
	c.prefetch = n
	s := c.sess
	c.mu.Unlock()
	c.signalRoom()
	if s == nil || !s.alive() {
		return nil // applied when the next connection opens
	}
	if err := s.ch.Qos(n, 0, true); err != nil && s.alive() {
		return errorf("basic.qos", err)
	}
	return nil
}

// batchLimit is how many acks may wait: fewer than half the prefetch
// window, so that coalescing never starves the window.
func (c *Consumer) batchLimit() int {
	n := c.b.cfg.ackBatch
	if c.prefetch > 0 {
		n = min(n, max(1, c.prefetch/2))
	}
	return n
}

// maybeFlushLocked flushes when enough acks wait, else makes sure the
// timer will. c.mu is held.
func (c *Consumer) maybeFlushLocked() error {
	if c.acks.pending() == 0 {
		return nil
	}
	if c.acks.pending() >= c.batchLimit() || c.b.cfg.ackDelay == 0 {
		return c.flushLocked(false)
	}
	c.armLocked()
	return nil
}

func (c *Consumer) armLocked() {
	if c.timerOn {
		return
	}
	c.timerOn = true
	if c.timer == nil {
		c.timer = time.AfterFunc(c.b.cfg.ackDelay, c.onTimer)
	} else {
		c.timer.Reset(c.b.cfg.ackDelay)
	}
}

func (c *Consumer) onTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timerOn = false
	c.flushLocked(false)
}

// flushLocked sends the acks due. c.mu is held.
func (c *Consumer) flushLocked(force bool) error {
	s := c.sess
	if s == nil {
		return nil
	}
	err := c.acks.flush(time.Now(), force, 4*c.b.cfg.ackDelay, c.batchLimit(), s.ch.Ack)
	if c.acks.pending() > 0 {
		c.armLocked() // tags waiting above a gap
	}
	if err != nil && s.alive() {
		return errorf("ack", err)
	}
	return nil
}

// Close implements transport.Consumer: pending acks are sent, then the
// channel and connection are closed and RabbitMQ requeues every delivery
// not acknowledged (flagged redelivered).
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.flushLocked(true)
		s := c.sess
		c.sess = nil
		c.gen++
		c.mu.Unlock()
		if s != nil {
			s.ch.Close() // synchronous: the acks above are processed first
			s.conn.Close()
		}
		c.b.forget(c)
	})
	return nil
}
