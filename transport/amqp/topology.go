package amqp

import (
	"fmt"
	"math"
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Exchange is an exchange declaration. The constructors below return the
// exchanges Celery and kombu declare, with the same flags: RabbitMQ
// refuses (PRECONDITION_FAILED) to redeclare an exchange differently.
type Exchange struct {
	Name       string
	Kind       string // "direct", "fanout" or "topic"
	Durable    bool
	AutoDelete bool
}

// Queue is a queue declaration with its binding, as kombu's Queue
// declares it: the exchange (if named), the queue, then the binding of
// the queue to the exchange with RoutingKey. A Queue whose Exchange has no
// name is reachable through the default exchange only and is not bound.
type Queue struct {
	Name       string
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	// Args are the x- arguments (x-max-priority, x-expires...). Integers
	// are int32 (int64 beyond 32 bits), as py-amqp writes them.
	Args       amqp091.Table
	Exchange   Exchange
	RoutingKey string
}

// TaskQueue is a Celery task queue as a worker or client declares it
// (celery-wire.md §4.1): a durable queue bound with key name to a durable
// direct exchange of the same name; x-max-priority when maxPriority > 0
// (task_queue_max_priority).
func TaskQueue(name string, maxPriority int) Queue {
	q := Queue{
		Name:       name,
		Durable:    true,
		Exchange:   Exchange{Name: name, Kind: "direct", Durable: true},
		RoutingKey: name,
	}
	if maxPriority > 0 {
		q.Args = amqp091.Table{"x-max-priority": tableInt(int64(maxPriority))}
	}
	return q
}

// Control (pidbox) defaults: control_queue_expires 10s and
// control_queue_ttl 300s (celery.app.defaults).
const (
	ControlQueueExpires = 10 * time.Second
	ControlQueueTTL     = 300 * time.Second
	EventQueueExpires   = 60 * time.Second
	EventQueueTTL       = 5 * time.Second
)

// ControlExchange is the remote-control broadcast exchange
// "<namespace>.pidbox" (namespace = control_exchange, default "celery"):
// fanout, not durable (kombu.pidbox.Mailbox).
func ControlExchange(namespace string) Exchange {
	return Exchange{Name: namespace + ".pidbox", Kind: "fanout"}
}

// ReplyExchange is the remote-control reply exchange
// "reply.<namespace>.pidbox": direct, not durable.
func ReplyExchange(namespace string) Exchange {
	return Exchange{Name: "reply." + namespace + ".pidbox", Kind: "direct"}
}

// ControlQueue is the queue a worker named nodename (e.g. "w1@host")
// consumes commands from: "<nodename>.<namespace>.pidbox", not durable,
// auto-delete, x-expires 10000 and x-message-ttl 300000, bound to the
// control exchange with key "". Celery consumes it without acks.
func ControlQueue(nodename, namespace string) Queue {
	return Queue{
		Name:       nodename + "." + namespace + ".pidbox",
		AutoDelete: true,
		Args:       ttlArgs(ControlQueueExpires, ControlQueueTTL),
		Exchange:   ControlExchange(namespace),
	}
}

// ReplyQueue is the queue a remote-control client with id oid reads
// replies from: "<oid>.reply.<namespace>.pidbox", not durable,
// auto-delete, x-expires 10000 and x-message-ttl 300000, bound to the
// reply exchange with key oid.
func ReplyQueue(oid, namespace string) Queue {
	ex := ReplyExchange(namespace)
	return Queue{
		Name:       oid + "." + ex.Name,
		AutoDelete: true,
		Args:       ttlArgs(ControlQueueExpires, ControlQueueTTL),
		Exchange:   ex,
		RoutingKey: oid,
	}
}

// EventExchange is the event exchange (event_exchange, default
// "celeryev"): topic and durable on RabbitMQ.
func EventExchange(name string) Exchange {
	return Exchange{Name: name, Kind: "topic", Durable: true}
}

// EventQueue is an event receiver's queue "celeryev.<nodeID>" (nodeID is
// a fresh UUID in Celery): not durable, auto-delete, x-expires 60000 and
// x-message-ttl 5000, bound to the "celeryev" exchange with routingKey
// ("#" for every event).
func EventQueue(nodeID, routingKey string) Queue {
	return Queue{
		Name:       "celeryev." + nodeID,
		AutoDelete: true,
		Args:       ttlArgs(EventQueueExpires, EventQueueTTL),
		Exchange:   EventExchange("celeryev"),
		RoutingKey: routingKey,
	}
}

// RPCQueue is the rpc:// backend's reply queue, named by the client's oid
// (the reply_to of the tasks it sends): not durable, auto-delete,
// x-expires = result_expires in milliseconds, reached through the default
// exchange only (celery.backends.rpc.RPCBackend.binding).
func RPCQueue(oid string, expires time.Duration) Queue {
	q := Queue{Name: oid, AutoDelete: true}
	if expires > 0 {
		q.Args = amqp091.Table{"x-expires": tableInt(expires.Milliseconds())}
	}
	return q
}

// delayExchange and delayQueue are celerity's ETA parking lot for one
// delay ttl (see doc.go): a durable fanout exchange feeding a durable
// queue whose messages expire after ttl and are dead-lettered through the
// default exchange with the routing key they were parked with, i.e. back
// to the queue they came from.
func delayQueue(ttl time.Duration) Queue {
	name := "celerity.delay." + strconv.FormatInt(ttl.Milliseconds(), 10)
	return Queue{
		Name:    name,
		Durable: true,
		Args: amqp091.Table{
			"x-message-ttl":          tableInt(ttl.Milliseconds()),
			"x-dead-letter-exchange": "",
		},
		Exchange: Exchange{Name: name, Kind: "fanout", Durable: true},
	}
}

func ttlArgs(expires, ttl time.Duration) amqp091.Table {
	return amqp091.Table{
		"x-expires":     tableInt(expires.Milliseconds()),
		"x-message-ttl": tableInt(ttl.Milliseconds()),
	}
}

// tableInt types n as py-amqp writes a Python int: signed 32 bits ('I')
// when it fits, else 64 bits.
func tableInt(n int64) any {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		return int32(n)
	}
	return n
}

// declareExchange declares ex on ch (nothing for the default exchange).
func declareExchange(ch *amqp091.Channel, ex Exchange) error {
	if ex.Name == "" {
		return nil
	}
	if err := ch.ExchangeDeclare(ex.Name, ex.Kind, ex.Durable, ex.AutoDelete, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare exchange %q (%s): %w", ex.Name, ex.Kind, err)
	}
	return nil
}

// declareQueue declares q as kombu does: exchange, queue, binding. It
// returns the number of messages ready in the queue.
func declareQueue(ch *amqp091.Channel, q Queue) (int, error) {
	if err := declareExchange(ch, q.Exchange); err != nil {
		return 0, err
	}
	ok, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args)
	if err != nil {
		return 0, fmt.Errorf("amqp: declare queue %q: %w", q.Name, err)
	}
	if q.Exchange.Name != "" {
		if err := ch.QueueBind(q.Name, q.RoutingKey, q.Exchange.Name, false, nil); err != nil {
			return 0, fmt.Errorf("amqp: bind queue %q to %q with key %q: %w", q.Name, q.Exchange.Name, q.RoutingKey, err)
		}
	}
	return ok.Messages, nil
}
