package amqp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// pubSource is what one Publish call sends: task messages or raw
// publishings (parked ETA deliveries, rpc results).
type pubSource interface {
	len() int
	// fill sets p (whose Headers table it may reuse) for item i and
	// returns where to send it.
	fill(i int, p *amqp091.Publishing) (exchange, key string, mandatory bool)
	// id names item i in errors and matches it to a basic.return (its
	// correlation id).
	id(i int) string
	// target names the queue to declare before item i is sent, if any
	// (the name may be a view valid during the call); spec returns its
	// declaration.
	target(i int) (name string, ok bool)
	spec(i int) Queue
	// release gives the items up once nothing refers to them any more.
	release()
}

// item states inside a pubBatch.
const (
	stPending  uint8 = iota // not sent in the current round
	stInFlight              // sent, awaiting its confirmation
	stAcked
	stNacked
	stReturned
	stLost    // its connection died before the confirmation: resend
	stInvalid // its headers cannot be written
)

// pubBatch tracks the items of one Publish call across its rounds (one
// round per connection it had to use).
type pubBatch struct {
	src pubSource

	mu        sync.Mutex
	round     int
	status    []uint8
	waiting   int    // items in flight in the current round
	sending   bool   // sendRound is still publishing this round's items
	reason    string // reply text of the first return
	invalid   error  // why the first invalid item cannot be written
	chanErr   error  // a channel-level error that killed the round
	abandoned bool   // the caller left (ctx): the last resolver releases src
	done      chan struct{}
}

func newBatch(src pubSource) *pubBatch {
	return &pubBatch{src: src, status: make([]uint8, src.len()), done: make(chan struct{}, 1)}
}

// resolve records the outcome of item i sent in round. Stale rounds (a
// dead session draining after the caller moved on) are ignored.
func (b *pubBatch) resolve(i, round int, st uint8, reason string) {
	b.mu.Lock()
	if round != b.round || b.status[i] != stInFlight {
		b.mu.Unlock()
		return
	}
	b.status[i] = st
	if st == stReturned && b.reason == "" {
		b.reason = reason
	}
	b.waiting--
	last := b.waiting == 0 && !b.sending // else sendRound signals when done
	release := last && b.abandoned
	b.mu.Unlock()
	if release {
		b.src.release()
	} else if last {
		select {
		case b.done <- struct{}{}:
		default:
		}
	}
}

// abandon is called when the caller stops waiting: src is released now
// if nothing is in flight, else by the last resolver.
func (b *pubBatch) abandon() {
	b.mu.Lock()
	b.abandoned = true
	now := b.waiting == 0
	b.mu.Unlock()
	if now {
		b.src.release()
	}
}

// flightEntry is one unconfirmed publish; its sequence number is implied
// by its place in the session's FIFO.
type flightEntry struct {
	batch *pubBatch
	idx   int32
	round int32
}

// pubSession is one publishing connection: a channel in confirm mode,
// a channel for declarations, and the goroutine that reads confirmations.
type pubSession struct {
	p    *publisher
	conn *amqp091.Connection
	ch   *amqp091.Channel
	dead chan struct{} // closed once the session is unusable

	// flight is the FIFO of unconfirmed publishes, oldest (next to be
	// confirmed) first. Guarded by flightMu; room waits on it.
	flightMu sync.Mutex
	room     *sync.Cond
	flight   []flightEntry
	head     int
	isDead   bool
	closeErr *amqp091.Error // why the publishing channel closed, if it said

	// declared queues and the declaration channel; guarded by declMu.
	declMu   sync.Mutex
	declCh   *amqp091.Channel
	declared map[string]struct{}

	// pub and table are the reused publishing and headers; guarded by
	// publisher.mu.
	pub   amqp091.Publishing
	table amqp091.Table
}

// publisher owns the Broker's publishing connection and re-dials it after
// a loss.
type publisher struct {
	cfg *config
	url string

	mu   sync.Mutex // serializes basic.publish, so FIFO order = sequence order
	sess atomic.Pointer[pubSession]

	dialMu   sync.Mutex // one dialer at a time; guards fails, lastFail, closed
	fails    int
	lastFail time.Time
	closed   bool
	stop     chan struct{}
}

func (s *pubSession) alive() bool {
	select {
	case <-s.dead:
		return false
	default:
		return true
	}
}

// session returns a live session, dialing one (with backoff after
// failures) if needed.
func (p *publisher) session(ctx context.Context) (*pubSession, error) {
	if s := p.sess.Load(); s != nil && s.alive() {
		return s, nil
	}
	p.dialMu.Lock()
	defer p.dialMu.Unlock()
	for attempt := 0; ; attempt++ {
		if p.closed {
			return nil, ErrClosed
		}
		if s := p.sess.Load(); s != nil && s.alive() {
			return s, nil
		}
		if p.fails > 0 {
			wait := p.cfg.backoff(p.fails-1) - time.Since(p.lastFail)
			if wait > 0 && !sleepCtx(ctx, p.stop, wait) {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
				}
				return nil, ErrClosed
			}
		}
		s, err := p.open(ctx)
		if err == nil {
			p.fails = 0
			p.sess.Store(s)
			return s, nil
		}
		p.fails++
		p.lastFail = time.Now()
		p.cfg.log.Warn("amqp: publisher connection failed", "attempt", p.fails, "err", err)
		if ctx.Err() != nil || attempt >= p.cfg.publishRetries {
			return nil, err
		}
	}
}

// open dials a new publishing session.
func (p *publisher) open(ctx context.Context) (*pubSession, error) {
	conn, err := p.cfg.dial(ctx, p.url, "publisher")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: open publishing channel: %w", ErrUnavailable, err)
	}
	s := &pubSession{
		p:        p,
		conn:     conn,
		ch:       ch,
		dead:     make(chan struct{}),
		declared: make(map[string]struct{}),
	}
	s.room = sync.NewCond(&s.flightMu)
	s.table = make(amqp091.Table, 24)
	// The confirmation channel holds every possible confirmation, so
	// amqp091-go's reader never waits on it; returns are unbuffered so
	// that a return is recorded before the confirmation that follows it.
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, p.cfg.maxInFlight+1))
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	go s.loop(confirms, returns, chClosed)
	return s, nil
}

// loop resolves confirmations in order until the channel closes, then
// fails whatever is still in flight.
func (s *pubSession) loop(confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return, chClosed <-chan *amqp091.Error) {
	returned := map[string]string{}
	for confirms != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			returned[r.CorrelationId] = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			s.flightMu.Lock()
			if s.head == len(s.flight) {
				s.flightMu.Unlock()
				continue // cannot happen: a confirmation for nothing sent
			}
			e := s.flight[s.head]
			s.flight[s.head] = flightEntry{}
			s.head++
			if s.head == len(s.flight) {
				s.flight, s.head = s.flight[:0], 0
			}
			s.room.Signal()
			s.flightMu.Unlock()
			st, reason := stNacked, ""
			if c.Ack {
				st = stAcked
				if len(returned) > 0 {
					id := e.batch.src.id(int(e.idx))
					if why, ok := returned[id]; ok {
						st, reason = stReturned, why
						delete(returned, id)
					}
				}
			}
			e.batch.resolve(int(e.idx), int(e.round), st, reason)
		}
	}
	var closeErr *amqp091.Error
	select {
	case closeErr = <-chClosed:
	default:
	}
	s.kill(closeErr)
}

// kill marks the session dead and fails every unconfirmed publish.
func (s *pubSession) kill(why *amqp091.Error) {
	s.flightMu.Lock()
	if s.isDead {
		s.flightMu.Unlock()
		return
	}
	s.isDead = true
	s.closeErr = why
	left := append([]flightEntry(nil), s.flight[s.head:]...)
	s.flight, s.head = nil, 0
	s.room.Broadcast()
	s.flightMu.Unlock()
	close(s.dead)
	s.conn.Close()
	for _, e := range left {
		e.batch.mu.Lock()
		if why != nil && why.Recover && e.batch.chanErr == nil {
			e.batch.chanErr = why
		}
		e.batch.mu.Unlock()
		e.batch.resolve(int(e.idx), int(e.round), stLost, "")
	}
	if why != nil {
		s.p.cfg.log.Warn("amqp: publishing channel closed", "code", why.Code, "reason", why.Reason)
	}
}

// declareItem declares the queue item i of src goes to, once per session.
func (s *pubSession) declareItem(src pubSource, i int) error {
	name, ok := src.target(i)
	if !ok {
		return nil
	}
	s.declMu.Lock()
	defer s.declMu.Unlock()
	if _, ok := s.declared[name]; ok {
		return nil
	}
	q := src.spec(i)
	if err := s.declChannel(); err != nil {
		return err
	}
	if _, err := declareQueue(s.declCh, q); err != nil {
		return err
	}
	s.declared[q.Name] = struct{}{}
	return nil
}

// declChannel (re)opens the declaration channel, which a refused
// declaration closes. declMu is held.
func (s *pubSession) declChannel() error {
	if s.declCh == nil || s.declCh.IsClosed() {
		ch, err := s.conn.Channel()
		if err != nil {
			return fmt.Errorf("%w: open declaration channel: %w", ErrUnavailable, err)
		}
		s.declCh = ch
	}
	return nil
}

// withDeclChannel runs f on the declaration channel.
func (s *pubSession) withDeclChannel(f func(ch *amqp091.Channel) error) error {
	s.declMu.Lock()
	defer s.declMu.Unlock()
	if err := s.declChannel(); err != nil {
		return err
	}
	return f(s.declCh)
}

// send publishes every item of src with confirms, resending those a lost
// connection swallowed, and returns when all are confirmed (or ctx ends).
// It always ends with src released.
func (p *publisher) send(ctx context.Context, src pubSource) error {
	if src.len() == 0 {
		src.release()
		return nil
	}
	b := newBatch(src)
	for attempt := 0; ; attempt++ {
		s, err := p.session(ctx)
		if err != nil {
			src.release()
			return err
		}
		if err := p.declareFor(s, b); err != nil {
			if !s.alive() && attempt < p.cfg.publishRetries {
				continue
			}
			src.release()
			return err
		}
		p.sendRound(s, b)
		select {
		case <-b.done:
		case <-ctx.Done():
			b.abandon()
			return ctx.Err()
		}
		b.mu.Lock()
		lost, chanErr := 0, b.chanErr
		for i, st := range b.status {
			if st == stLost {
				lost++
				b.status[i] = stPending
			}
		}
		b.round++
		b.mu.Unlock()
		if lost == 0 {
			err := b.err()
			src.release()
			return err
		}
		if chanErr != nil {
			// The broker closed the channel because of what we sent (e.g. an
			// exchange that does not exist): resending would fail alike.
			src.release()
			return fmt.Errorf("amqp: publish: channel closed by the broker: %w", chanErr)
		}
		if attempt >= p.cfg.publishRetries {
			src.release()
			return fmt.Errorf("%w: publish: %d message(s) unconfirmed after %d attempts", ErrUnavailable, lost, attempt+1)
		}
		p.cfg.log.Warn("amqp: connection lost while publishing; resending unconfirmed messages", "n", lost)
	}
}

// declareFor declares the queues the pending items go to.
func (p *publisher) declareFor(s *pubSession, b *pubBatch) error {
	for i := range b.status {
		if b.status[i] != stPending {
			continue
		}
		if err := s.declareItem(b.src, i); err != nil {
			return err
		}
	}
	return nil
}

// sendRound publishes the pending items of b on s.
func (p *publisher) sendRound(s *pubSession, b *pubBatch) {
	b.mu.Lock()
	round := b.round
	b.sending = true
	b.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range b.status {
		if b.status[i] != stPending {
			continue
		}
		pub := &s.pub
		*pub = amqp091.Publishing{Headers: s.table}
		exchange, key, mandatory := b.src.fill(i, pub)
		if err := pub.Headers.Validate(); err != nil {
			b.mu.Lock()
			b.status[i] = stInvalid
			if b.invalid == nil {
				b.invalid = fmt.Errorf("amqp: publish %s: headers: %w", b.src.id(i), err)
			}
			b.mu.Unlock()
			continue
		}
		// Reserve the item's place in the FIFO before it goes out, so its
		// confirmation always finds it.
		s.flightMu.Lock()
		for len(s.flight)-s.head >= p.cfg.maxInFlight && !s.isDead {
			s.room.Wait()
		}
		if s.isDead {
			s.flightMu.Unlock()
			b.mu.Lock()
			b.status[i] = stLost
			b.mu.Unlock()
			continue
		}
		s.flight = append(s.flight, flightEntry{batch: b, idx: int32(i), round: int32(round)})
		b.mu.Lock()
		b.status[i] = stInFlight
		b.waiting++
		b.mu.Unlock()
		s.flightMu.Unlock()
		if err := s.ch.Publish(exchange, key, mandatory, false, *pub); err != nil {
			// The channel or connection is gone; the session's loop fails
			// everything in flight, this item included.
			s.conn.Close()
		}
	}
	b.mu.Lock()
	b.sending = false
	none := b.waiting == 0
	b.mu.Unlock()
	if none {
		select {
		case b.done <- struct{}{}:
		default:
		}
	}
}

// err summarizes nacked and returned items.
func (b *pubBatch) err() error {
	var pe PublishError
	for i, st := range b.status {
		switch st {
		case stNacked:
			pe.Nacked = append(pe.Nacked, b.src.id(i))
		case stReturned:
			pe.Returned = append(pe.Returned, b.src.id(i))
		}
	}
	if pe.Nacked == nil && pe.Returned == nil {
		return b.invalid
	}
	pe.Reason = b.reason
	return &pe
}

// close shuts the publishing connection down.
func (p *publisher) close() {
	p.dialMu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.dialMu.Unlock()
	if s := p.sess.Load(); s != nil {
		s.conn.Close()
	}
}

// msgSource publishes task messages (Broker.Publish).
type msgSource struct {
	b    *Broker
	msgs []*codec.Message
}

func (m *msgSource) len() int { return len(m.msgs) }

func (m *msgSource) id(i int) string {
	msg := m.msgs[i]
	if len(msg.CorrelationID) != 0 {
		return string(msg.CorrelationID)
	}
	return string(msg.ID)
}

// target: a task published to the default exchange (as Celery does) or
// to the exchange named like its routing key goes to the queue of that
// name, declared as Celery declares it. Other exchanges are the
// application's business.
func (m *msgSource) target(i int) (string, bool) {
	msg := m.msgs[i]
	if len(msg.RoutingKey) == 0 || (len(msg.Exchange) != 0 && string(msg.Exchange) != string(msg.RoutingKey)) {
		return "", false
	}
	return unsafeconv.String(msg.RoutingKey), true
}

func (m *msgSource) spec(i int) Queue {
	return TaskQueue(string(m.msgs[i].RoutingKey), m.b.cfg.maxPriority)
}

func (m *msgSource) fill(i int, p *amqp091.Publishing) (string, string, bool) {
	msg := m.msgs[i]
	p.Headers = amqpHeaders(msg, p.Headers)
	props := codec.AMQPPropertiesOf(msg)
	p.ContentType = props.ContentType
	p.ContentEncoding = props.ContentEncoding
	p.CorrelationId = props.CorrelationID
	p.ReplyTo = props.ReplyTo
	if p.ReplyTo == "" {
		p.ReplyTo = m.b.oid // as Celery: every task names its client's reply queue
	}
	p.Expiration = props.Expiration
	p.DeliveryMode = props.DeliveryMode
	p.Priority = props.Priority
	p.Body = msg.Body
	return unsafeconv.String(msg.Exchange), unsafeconv.String(msg.RoutingKey), true
}

func (m *msgSource) release() {
	for _, msg := range m.msgs {
		codec.ReleaseMessage(msg)
	}
}

// amqpHeaders is codec.AMQPHeaders with nested maps converted to
// amqp091.Table, which is the only map type amqp091-go writes.
func amqpHeaders(m *codec.Message, dst amqp091.Table) amqp091.Table {
	h := codec.AMQPHeaders(m, dst)
	if len(m.ExtraHeaders) != 0 {
		for k, v := range h {
			h[k] = toTable(v)
		}
	}
	return h
}

func toTable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		t := make(amqp091.Table, len(x))
		for k, e := range x {
			t[k] = toTable(e)
		}
		return t
	case []any:
		for i, e := range x {
			x[i] = toTable(e)
		}
		return x
	}
	return v
}

// rawPub is one publishing sent as is.
type rawPub struct {
	exchange, key string
	mandatory     bool
	pub           amqp091.Publishing
	declare       *Queue
}

// rawSource publishes rawPubs (parked deliveries, rpc results).
type rawSource struct {
	items []rawPub
}

func (r *rawSource) len() int         { return len(r.items) }
func (r *rawSource) id(i int) string  { return r.items[i].pub.CorrelationId }
func (r *rawSource) release()         {}
func (r *rawSource) spec(i int) Queue { return *r.items[i].declare }

func (r *rawSource) target(i int) (string, bool) {
	if q := r.items[i].declare; q != nil {
		return q.Name, true
	}
	return "", false
}

func (r *rawSource) fill(i int, p *amqp091.Publishing) (string, string, bool) {
	it := &r.items[i]
	*p = it.pub
	return it.exchange, it.key, it.mandatory
}
