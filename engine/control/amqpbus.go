package control

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/transport/amqp"
)

// AMQPBus is the Bus on RabbitMQ, with the topology Celery declares
// (celery-wire.md §4.1, §8.1): commands go to the fanout exchange
// "celery.pidbox" and each worker consumes "<node>.celery.pidbox"
// (auto-delete, x-expires 10 s, x-message-ttl 300 s) without acks; replies
// go to the direct exchange "reply.celery.pidbox" with the client's oid as
// routing key, to "<oid>.reply.celery.pidbox"; events go to the durable
// topic exchange "celeryev", and monitors consume "celeryev.<uuid>"
// (x-expires 60 s, x-message-ttl 5 s). Exchanges and queues are declared
// with transport/amqp's kombu-identical declarations.
//
// Publishing uses one connection of the bus's own (no publisher confirms:
// kombu sends these without them); each listener has a connection of its
// own and reconnects with backoff when it is lost. AMQPBus is safe for
// concurrent use.
type AMQPBus struct {
	url string
	cfg busConfig

	pubMu    sync.Mutex // guards the publishing connection
	conn     *amqp091.Connection
	ch       *amqp091.Channel
	declared map[string]bool

	mu        sync.Mutex
	closed    bool
	listeners map[*amqpListener]struct{}
}

// OpenAMQP connects to the RabbitMQ server of a Celery broker URL
// (amqp://, amqps://, pyamqp://; "amqp://h//" is vhost "/") and returns
// a bus. It fails if the server cannot be reached within ctx.
func OpenAMQP(ctx context.Context, rawURL string, opts ...BusOption) (*AMQPBus, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("control: broker URL: %w", err)
	}
	switch u.Scheme {
	case "amqp", "pyamqp":
		u.Scheme = "amqp"
	case "amqps", "pyamqps":
		u.Scheme = "amqps"
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, redact(rawURL))
	}
	b := &AMQPBus{url: u.String(), cfg: newBusConfig(opts), declared: map[string]bool{},
		listeners: map[*amqpListener]struct{}{}}
	if _, err := amqp091.ParseURI(b.url); err != nil {
		return nil, fmt.Errorf("control: broker URL %s: %w", redact(rawURL), err)
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if _, err := b.channelLocked(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *AMQPBus) dial(ctx context.Context, role string) (*amqp091.Connection, error) {
	conn, err := amqp.Dial(ctx, b.url, role)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return conn, nil
}

// channelLocked returns the publishing channel, dialing if needed.
func (b *AMQPBus) channelLocked(ctx context.Context) (*amqp091.Channel, error) {
	if b.ch != nil && !b.ch.IsClosed() {
		return b.ch, nil
	}
	b.dropLocked()
	conn, err := b.dial(ctx, "control")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("control: open channel: %w", err)
	}
	b.conn, b.ch = conn, ch
	return ch, nil
}

func (b *AMQPBus) dropLocked() {
	if b.conn != nil {
		b.conn.Close()
	}
	b.conn, b.ch = nil, nil
	clear(b.declared)
}

// headerTable maps h to AMQP header values typed as py-amqp types them.
func headerTable(h *Headers) amqp091.Table {
	t := amqp091.Table{}
	if h.Ticket != "" {
		t["ticket"] = h.Ticket
	}
	if h.Hostname != "" {
		t["hostname"] = h.Hostname
	}
	if h.Clock != 0 {
		if h.Clock <= math.MaxInt32 {
			t["clock"] = int32(h.Clock)
		} else {
			t["clock"] = h.Clock
		}
	}
	if h.HasExpires {
		t["expires"] = h.Expires
	}
	return t
}

func (b *AMQPBus) publish(ctx context.Context, ex amqp.Exchange, rk string, m *Message) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	pub := amqp091.Publishing{
		Headers:         headerTable(&m.Headers),
		ContentType:     m.contentType(),
		ContentEncoding: m.contentEncoding(),
		DeliveryMode:    m.deliveryMode(),
		Body:            m.Body,
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var ch *amqp091.Channel
		if ch, err = b.channelLocked(ctx); err != nil {
			return err
		}
		if !b.declared[ex.Name] {
			if err = ch.ExchangeDeclare(ex.Name, ex.Kind, ex.Durable, ex.AutoDelete, false, false, nil); err != nil {
				b.dropLocked()
				return fmt.Errorf("control: declare exchange %q: %w", ex.Name, err)
			}
			b.declared[ex.Name] = true
		}
		if err = ch.PublishWithContext(ctx, ex.Name, rk, false, false, pub); err == nil {
			return nil
		}
		b.dropLocked() // the connection was lost: redial once
	}
	return fmt.Errorf("control: publish to %q: %w", ex.Name, err)
}

// PublishCommand implements Bus.
func (b *AMQPBus) PublishCommand(ctx context.Context, m *Message) error {
	return b.publish(ctx, amqp.ControlExchange(b.cfg.namespace), "", m)
}

// PublishReply implements Bus.
func (b *AMQPBus) PublishReply(ctx context.Context, oid string, m *Message) error {
	return b.publish(ctx, amqp.ReplyExchange(b.cfg.namespace), oid, m)
}

// PublishEvent implements Bus.
func (b *AMQPBus) PublishEvent(ctx context.Context, rk string, m *Message) error {
	return b.publish(ctx, amqp.EventExchange(b.cfg.eventExchange), rk, m)
}

// ListenCommands implements Bus: it consumes "<node>.<namespace>.pidbox".
func (b *AMQPBus) ListenCommands(ctx context.Context, node string, fn func(*Message)) (Listener, error) {
	return b.listen(ctx, amqp.ControlQueue(node, b.cfg.namespace), fn)
}

// ListenReplies implements Bus: it consumes "<oid>.reply.<namespace>.pidbox".
func (b *AMQPBus) ListenReplies(ctx context.Context, oid string, fn func(*Message)) (Listener, error) {
	return b.listen(ctx, amqp.ReplyQueue(oid, b.cfg.namespace), fn)
}

// ListenEvents implements Bus: it consumes a fresh "celeryev.<uuid>"
// queue bound with key.
func (b *AMQPBus) ListenEvents(ctx context.Context, key string, fn func(*Message)) (Listener, error) {
	q := amqp.EventQueue(NewUUID(), key)
	q.Exchange = amqp.EventExchange(b.cfg.eventExchange)
	return b.listen(ctx, q, fn)
}

func (b *AMQPBus) listen(ctx context.Context, q amqp.Queue, fn func(*Message)) (Listener, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	l := &amqpListener{b: b, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	b.listeners[l] = struct{}{}
	b.mu.Unlock()
	ready := make(chan error, 1)
	go func() {
		defer close(l.done)
		first := true
		backoff := 10 * time.Millisecond
		for l.ctx.Err() == nil {
			deliveries, err := l.open(q)
			if first {
				first = false
				ready <- err
				if err != nil {
					return
				}
			}
			if err == nil {
				backoff = 10 * time.Millisecond
				for d := range deliveries {
					m := Message{Body: d.Body, ContentType: d.ContentType, Transient: d.DeliveryMode == 1,
						Exchange: d.Exchange, RoutingKey: d.RoutingKey}
					headersFrom(&m.Headers, func(k string) (any, bool) { v, ok := d.Headers[k]; return v, ok })
					fn(&m)
				}
				err = fmt.Errorf("connection closed")
			}
			l.setConn(nil)
			if l.ctx.Err() != nil {
				return
			}
			b.cfg.log.Warn("control: amqp listener lost its connection; reconnecting", "queue", q.Name, "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	case <-ctx.Done():
		l.Close()
		return nil, ctx.Err()
	}
}

// amqpListener is one consumer with its connection.
type amqpListener struct {
	b      *AMQPBus
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	conn   *amqp091.Connection
	once   sync.Once
}

// open dials and declares q, then consumes it without acks.
func (l *amqpListener) open(q amqp.Queue) (<-chan amqp091.Delivery, error) {
	conn, err := l.b.dial(l.ctx, "listener")
	if err != nil {
		return nil, err
	}
	if !l.setConn(conn) {
		conn.Close()
		return nil, ErrClosed
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("control: open channel: %w", err)
	}
	ex := q.Exchange
	if err := ch.ExchangeDeclare(ex.Name, ex.Kind, ex.Durable, ex.AutoDelete, false, false, nil); err != nil {
		return nil, fmt.Errorf("control: declare exchange %q: %w", ex.Name, err)
	}
	if _, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args); err != nil {
		return nil, fmt.Errorf("control: declare queue %q: %w", q.Name, err)
	}
	if err := ch.QueueBind(q.Name, q.RoutingKey, ex.Name, false, nil); err != nil {
		return nil, fmt.Errorf("control: bind queue %q: %w", q.Name, err)
	}
	d, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("control: consume %q: %w", q.Name, err)
	}
	return d, nil
}

// setConn records the listener's connection (closing the previous one);
// it reports false once the listener is closed.
func (l *amqpListener) setConn(c *amqp091.Connection) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
	}
	l.conn = c
	return l.ctx.Err() == nil
}

// Close implements Listener.
func (l *amqpListener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.setConn(nil)
		<-l.done
		l.b.mu.Lock()
		delete(l.b.listeners, l)
		l.b.mu.Unlock()
	})
	return nil
}

// Close implements Bus.
func (b *AMQPBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ls := make([]*amqpListener, 0, len(b.listeners))
	for l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	b.pubMu.Lock()
	b.dropLocked()
	b.pubMu.Unlock()
	return nil
}
