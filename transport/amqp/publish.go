package amqp

import (
	"context"
	"fmt"
	"strconv"
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
	// returns where to send it, or why p cannot be written.
	fill(i int, p *amqp091.Publishing) (exchange, key string, mandatory bool, err error)
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
	stPending  uint8 = iota // to be sent (again)
	stInFlight              // sent, awaiting its confirmation
	stAcked
	stNacked
	stReturned
	stLost    // its connection died before the confirmation: resend
	stInvalid // its headers cannot be written
)

// pubBatch tracks the items of one Publish call across its rounds (one
// round per connection it had to use). Only the goroutine of that call
// touches it.
type pubBatch struct {
	src     pubSource
	status  []uint8
	dcs     []*amqp091.DeferredConfirmation
	reason  string // reply text of the first return
	invalid error  // why the first invalid item cannot be written
}

// pubSession is one publishing connection: a channel in confirm mode and
// a channel for declarations.
type pubSession struct {
	conn *amqp091.Connection
	ch   *amqp091.Channel
	// dead is closed once the session is unusable; closeErr (set before)
	// says why, if the server said.
	dead     chan struct{}
	closeErr *amqp091.Error

	// returns receives basic.return frames. RabbitMQ sends the return of
	// a mandatory message before its confirmation, and amqp091-go hands
	// it to this buffered channel before it resolves the confirmation, so
	// whoever sees a confirmation can find the return by draining it.
	returns  <-chan amqp091.Return
	retMu    sync.Mutex
	returned map[string]string // correlation id -> reply code and text; guarded by retMu
	nret     atomic.Int32      // len(returned)

	// The declaration channel is guarded by declMu; the queues declared on
	// this connection by declaredMu.
	declMu     sync.Mutex
	declCh     *amqp091.Channel
	declaredMu sync.RWMutex
	declared   map[string]struct{}
}

// pubScratch is a publishing and headers table that one sendChunk call
// fills, item after item.
type pubScratch struct {
	pub   amqp091.Publishing
	table amqp091.Table
}

var scratchPool = sync.Pool{New: func() any { return &pubScratch{table: make(amqp091.Table, 24)} }}

// publisher owns the Broker's publishing connection and re-dials it after
// a loss.
type publisher struct {
	cfg *config
	url string

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
		conn:     conn,
		ch:       ch,
		dead:     make(chan struct{}),
		returned: make(map[string]string),
		declared: make(map[string]struct{}),
	}
	s.returns = ch.NotifyReturn(make(chan amqp091.Return, p.cfg.maxInFlight+1))
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	go func() {
		var why *amqp091.Error
		select {
		case why = <-chClosed:
		case why = <-connClosed:
		}
		s.closeErr = why
		close(s.dead)
		conn.Close()
		if why != nil {
			p.cfg.log.Warn("amqp: publishing channel closed", "code", why.Code, "reason", why.Reason)
		}
	}()
	return s, nil
}

// takeReturn reports whether the message with correlation id was
// returned, and why. Call it after the message's confirmation.
func (s *pubSession) takeReturn(id string) (string, bool) {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	for {
		select {
		case r, ok := <-s.returns:
			if ok {
				s.returned[r.CorrelationId] = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
				continue
			}
		default:
		}
		break
	}
	why, ok := s.returned[id]
	if ok {
		delete(s.returned, id)
	}
	s.nret.Store(int32(len(s.returned)))
	return why, ok
}

// mayHaveReturns reports whether takeReturn could find anything.
func (s *pubSession) mayHaveReturns() bool { return len(s.returns) > 0 || s.nret.Load() > 0 }

// declareItem declares the queue item i of src goes to, once per session.
func (s *pubSession) declareItem(src pubSource, i int) error {
	name, ok := src.target(i)
	if !ok {
		return nil
	}
	s.declaredMu.RLock()
	_, done := s.declared[name]
	s.declaredMu.RUnlock()
	if done {
		return nil
	}
	q := src.spec(i)
	s.declMu.Lock()
	defer s.declMu.Unlock()
	if err := s.declChannel(); err != nil {
		return err
	}
	if _, err := declareQueue(s.declCh, q); err != nil {
		return err
	}
	s.declaredMu.Lock()
	s.declared[q.Name] = struct{}{}
	s.declaredMu.Unlock()
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
// Items go out in chunks of at most maxInFlight, each chunk pipelined and
// then its confirmations collected. src is released once nothing refers
// to its items any more, whatever send returns.
func (p *publisher) send(ctx context.Context, src pubSource) error {
	n := src.len()
	if n == 0 {
		src.release()
		return nil
	}
	b := &pubBatch{src: src, status: make([]uint8, n), dcs: make([]*amqp091.DeferredConfirmation, n)}
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
		for lo := 0; lo < n; lo += p.cfg.maxInFlight {
			hi := min(n, lo+p.cfg.maxInFlight)
			p.sendChunk(s, b, lo, hi)
			if err := b.wait(ctx, s, lo, hi); err != nil {
				go b.abandon(lo) // release src once its confirmations are in
				return err
			}
		}
		lost := 0
		for i, st := range b.status {
			if st == stLost {
				lost++
				b.status[i] = stPending
			}
		}
		if lost == 0 {
			err := b.err()
			src.release()
			return err
		}
		select { // a lost item means a closed channel: learn why
		case <-s.dead:
		case <-ctx.Done():
			src.release()
			return ctx.Err()
		}
		if why := s.closeErr; why != nil && why.Recover {
			// The broker closed the channel because of what we sent (e.g. an
			// exchange that does not exist): resending would fail alike.
			src.release()
			return fmt.Errorf("amqp: publish: channel closed by the broker: %w", why)
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
	for i, st := range b.status {
		if st != stPending {
			continue
		}
		if err := s.declareItem(b.src, i); err != nil {
			return err
		}
	}
	return nil
}

// sendChunk publishes the pending items lo..hi-1 of b on s, back to back
// (amqp091-go serializes concurrent publishers on the channel).
func (p *publisher) sendChunk(s *pubSession, b *pubBatch, lo, hi int) {
	sc := scratchPool.Get().(*pubScratch)
	defer scratchPool.Put(sc)
	for i := lo; i < hi; i++ {
		if b.status[i] != stPending {
			continue
		}
		pub := &sc.pub
		*pub = amqp091.Publishing{Headers: sc.table}
		exchange, key, mandatory, err := b.src.fill(i, pub)
		if err != nil {
			b.status[i] = stInvalid
			if b.invalid == nil {
				b.invalid = fmt.Errorf("amqp: publish %s: headers: %w", b.src.id(i), err)
			}
			continue
		}
		dc, err := s.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, *pub)
		if err != nil || dc == nil {
			// The channel or connection is gone: resend on the next one.
			b.status[i] = stLost
			s.conn.Close()
			continue
		}
		b.status[i], b.dcs[i] = stInFlight, dc
	}
	sc.pub = amqp091.Publishing{}
	clear(sc.table)
}

// wait collects the confirmations of items lo..hi-1.
func (b *pubBatch) wait(ctx context.Context, s *pubSession, lo, hi int) error {
	acked := false
	for i := lo; i < hi; i++ {
		if b.status[i] != stInFlight {
			continue
		}
		dc := b.dcs[i]
		select {
		case <-dc.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		b.dcs[i] = nil
		switch {
		case dc.Acked():
			b.status[i] = stAcked
			acked = true
		case s.ch.IsClosed():
			b.status[i] = stLost // amqp091-go nacks what was unconfirmed when the channel closes
		default:
			b.status[i] = stNacked
		}
	}
	if acked && s.mayHaveReturns() {
		for i := lo; i < hi; i++ {
			if b.status[i] != stAcked {
				continue
			}
			if why, ok := s.takeReturn(b.src.id(i)); ok {
				b.status[i] = stReturned
				if b.reason == "" {
					b.reason = why
				}
			}
		}
	}
	return nil
}

// abandon waits for the confirmations still due from item lo on (the
// caller has gone), then releases the items.
func (b *pubBatch) abandon(lo int) {
	for _, dc := range b.dcs[lo:] {
		if dc != nil {
			<-dc.Done()
		}
	}
	b.src.release()
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

// fill writes msg's properties as codec.AMQPPropertiesOf does, but as
// views of msg (amqp091-go encodes them before Publish returns, while
// the batch still owns msg). The Celery headers codec.AMQPHeaders makes
// are valid AMQP values by construction; only extra headers (converted
// from JSON) are validated.
func (m *msgSource) fill(i int, p *amqp091.Publishing) (string, string, bool, error) {
	msg := m.msgs[i]
	p.Headers = amqpHeaders(msg, p.Headers)
	if len(msg.ExtraHeaders) != 0 {
		if err := p.Headers.Validate(); err != nil {
			return "", "", false, err
		}
	}
	p.ContentType = codec.ContentTypeJSON
	if len(msg.ContentType) != 0 {
		p.ContentType = unsafeconv.String(msg.ContentType)
	}
	switch {
	case len(msg.ContentEncoding) != 0:
		p.ContentEncoding = unsafeconv.String(msg.ContentEncoding)
	case p.ContentType == codec.ContentTypeMsgpack || p.ContentType == codec.ContentTypePickle:
		p.ContentEncoding = codec.EncodingBinary
	default:
		p.ContentEncoding = codec.EncodingUTF8
	}
	p.CorrelationId = unsafeconv.String(msg.CorrelationID)
	if p.CorrelationId == "" {
		p.CorrelationId = unsafeconv.String(msg.ID)
	}
	p.ReplyTo = unsafeconv.String(msg.ReplyTo)
	if p.ReplyTo == "" {
		p.ReplyTo = m.b.oid // as Celery: every task names its client's reply queue
	}
	if msg.HasExpiration {
		p.Expiration = strconv.FormatInt(max(msg.Expiration, 0), 10)
	}
	p.DeliveryMode = amqp091.Persistent
	if msg.DeliveryMode != 0 {
		p.DeliveryMode = msg.DeliveryMode
	}
	p.Priority = msg.Priority
	p.Body = msg.Body
	return unsafeconv.String(msg.Exchange), unsafeconv.String(msg.RoutingKey), true, nil
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

func (r *rawSource) fill(i int, p *amqp091.Publishing) (string, string, bool, error) {
	it := &r.items[i]
	*p = it.pub
	return it.exchange, it.key, it.mandatory, p.Headers.Validate()
}
