package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// Broker is a RabbitMQ broker speaking Celery's AMQP dialect. It publishes
// on one connection (publisher confirms, pipelined) and gives each
// Consumer a connection of its own. It is safe for concurrent use.
type Broker struct {
	cfg config
	url string
	oid string
	pub publisher

	// routes is set when an RPCBackend is attached: consumers record where
	// each task's results go.
	routes atomic.Pointer[routeTable]

	mu        sync.Mutex
	closed    bool
	consumers map[*Consumer]struct{}
}

var _ transport.Broker = (*Broker)(nil)

// NewBroker connects to the RabbitMQ server at url, written as Celery
// writes broker_url: amqp://user:pass@host:port/vhost (amqps:// for TLS,
// pyamqp:// accepted; "amqp://h//" is vhost "/"; query parameters such as
// heartbeat=30 as RabbitMQ's URI spec defines them). It fails if the
// server cannot be reached within ctx.
func NewBroker(ctx context.Context, url string, opts ...Option) (*Broker, error) {
	norm, err := normalizeURL(url)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: defaultConfig(), url: norm, oid: codec.NewUUID(), consumers: map[*Consumer]struct{}{}}
	for _, o := range opts {
		o(&b.cfg)
	}
	b.pub = publisher{cfg: &b.cfg, url: norm, stop: make(chan struct{})}
	s, err := b.pub.open(ctx)
	if err != nil {
		return nil, err
	}
	b.pub.sess.Store(s)
	return b, nil
}

// OID is this client's id, as Celery's app.thread_oid: the reply_to of
// the tasks it publishes and the name of its rpc:// reply queue.
func (b *Broker) OID() string { return b.oid }

// Publish sends msgs with publisher confirms and returns once RabbitMQ
// has confirmed every one (or ctx ends). A message published to the
// default exchange (Celery's way) or to the exchange named like its
// routing key first has its queue declared as Celery declares it, once
// per connection. Messages are persistent unless DeliveryMode says 1, carry
// their expires as the AMQP expiration and are published mandatory: an
// unroutable one comes back as an ErrReturned *PublishError, a nacked one
// as ErrNacked. A message with no ReplyTo gets the broker's OID, as Celery
// sets reply_to on every task.
//
// Many Publish calls may run at once; their messages are pipelined on one
// channel and confirmed in batches. If the connection drops, the messages
// not yet confirmed are sent again on a new one (so a message may arrive
// twice). Publish takes ownership of msgs whatever it returns.
func (b *Broker) Publish(ctx context.Context, msgs ...*codec.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return b.pub.send(ctx, &msgSource{b: b, msgs: msgs})
}

// PublishRaw sends one message that is not a task, as is, with a
// publisher confirm and not mandatory: an event to EventExchange("celeryev")
// with routing key "task.multi", a remote-control command to
// ControlExchange("celery"), a reply to ReplyExchange("celery") with the
// client's oid as key. Celery sends these with delivery_mode 1
// (transient); set msg.DeliveryMode accordingly. msg's slices and table
// are read during the call only.
func (b *Broker) PublishRaw(ctx context.Context, exchange, routingKey string, msg amqp091.Publishing) error {
	return b.pub.send(ctx, &rawSource{items: []rawPub{{exchange: exchange, key: routingKey, pub: msg}}})
}

// Consume starts a consumer of queues on a connection of its own, with
// basic.qos prefetch (global, as Celery sets it; 0 = unlimited). The
// queues are declared as Celery declares task queues. The returned value
// is a *Consumer.
func (b *Broker) Consume(ctx context.Context, queues []string, prefetch int) (transport.Consumer, error) {
	if len(queues) == 0 {
		return nil, errors.New("amqp: consume: no queues")
	}
	c := newConsumer(b, queues, prefetch)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		b.forget(c)
		return nil, err
	}
	return c, nil
}

func (b *Broker) forget(c *Consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}

// Close closes the consumers and the publishing connection. Messages the
// consumers hold unacknowledged are requeued by RabbitMQ.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cs := make([]*Consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	b.pub.close()
	return nil
}

// Declare declares queues (with their exchanges and bindings), e.g. the
// remote-control or event queues built by ControlQueue and EventQueue.
func (b *Broker) Declare(ctx context.Context, queues ...Queue) error {
	return b.onDeclChannel(ctx, func(ch *amqp091.Channel) error {
		for _, q := range queues {
			if _, err := declareQueue(ch, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeclareExchange declares exchanges, e.g. ControlExchange("celery").
func (b *Broker) DeclareExchange(ctx context.Context, exchanges ...Exchange) error {
	return b.onDeclChannel(ctx, func(ch *amqp091.Channel) error {
		for _, ex := range exchanges {
			if err := declareExchange(ch, ex); err != nil {
				return err
			}
		}
		return nil
	})
}

// Purge deletes every ready message of queue and returns how many there
// were (0 when the queue does not exist or the broker cannot be reached;
// the error is logged). Unacknowledged messages are not touched.
func (b *Broker) Purge(queue string) int {
	var n int
	err := b.onDeclChannel(context.Background(), func(ch *amqp091.Channel) error {
		var err error
		n, err = ch.QueuePurge(queue, false)
		return err
	})
	if err != nil {
		b.cfg.log.Warn("amqp: purge", "queue", queue, "err", err)
		return 0
	}
	return n
}

// QueueLen returns the number of ready messages in queue (a passive
// declaration: it fails if the queue does not exist).
func (b *Broker) QueueLen(ctx context.Context, queue string) (int, error) {
	var n int
	err := b.onDeclChannel(ctx, func(ch *amqp091.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n, err
}

// DeleteQueue deletes queue with its messages and returns how many it
// held. It does not delete the queue's exchange.
func (b *Broker) DeleteQueue(ctx context.Context, queue string) (int, error) {
	var n int
	err := b.onDeclChannel(ctx, func(ch *amqp091.Channel) error {
		var err error
		n, err = ch.QueueDelete(queue, false, false, false)
		return err
	})
	return n, err
}

// DeleteExchange deletes exchange.
func (b *Broker) DeleteExchange(ctx context.Context, exchange string) error {
	return b.onDeclChannel(ctx, func(ch *amqp091.Channel) error {
		return ch.ExchangeDelete(exchange, false, false)
	})
}

// onDeclChannel runs f on the publishing connection's declaration
// channel. A refused operation closes only that channel, which is
// reopened next time.
func (b *Broker) onDeclChannel(ctx context.Context, f func(ch *amqp091.Channel) error) error {
	s, err := b.pub.session(ctx)
	if err != nil {
		return err
	}
	return s.withDeclChannel(f)
}

// errorf wraps err with the operation for the caller.
func errorf(op string, err error) error { return fmt.Errorf("amqp: %s: %w", op, err) }
