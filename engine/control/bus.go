package control

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/redis"
)

// Bus carries remote-control commands, their replies and events between
// processes over a broker, with the topology kombu's Mailbox and Celery's
// event dispatcher use, so that Python workers and tools share it
// (celery-wire.md §3.7, §4.1, §7, §8). RedisBus, AMQPBus and MemoryBus
// implement it; all are safe for concurrent use.
//
// Listener callbacks run on the bus's own goroutine, one message at a
// time: they must not block (hand work to another goroutine). The
// *Message they get is valid only during the call.
type Bus interface {
	// PublishCommand broadcasts a command to every worker's mailbox (the
	// fanout exchange "<namespace>.pidbox").
	PublishCommand(ctx context.Context, m *Message) error
	// PublishReply sends a reply to the client whose id is oid (the
	// direct exchange "reply.<namespace>.pidbox", routing key oid). A
	// reply nobody waits for is dropped, as in kombu.
	PublishReply(ctx context.Context, oid string, m *Message) error
	// PublishEvent publishes on the event exchange ("celeryev") with
	// routing key rk ("task.multi", "worker.heartbeat", ...).
	PublishEvent(ctx context.Context, rk string, m *Message) error
	// ListenCommands delivers the commands broadcast to the mailboxes
	// until the listener is closed; node is the worker's node name
	// (its queue is "<node>.<namespace>.pidbox"). It returns once the
	// subscription is in place.
	ListenCommands(ctx context.Context, node string, fn func(*Message)) (Listener, error)
	// ListenReplies delivers the replies sent to oid.
	ListenReplies(ctx context.Context, oid string, fn func(*Message)) (Listener, error)
	// ListenEvents delivers the events whose routing key matches key, an
	// AMQP topic pattern ("#" for every event, "worker.#").
	ListenEvents(ctx context.Context, key string, fn func(*Message)) (Listener, error)
	// Close stops every listener and releases what the bus opened.
	Close() error
}

// Listener is a running subscription; Close ends it and waits until its
// callback is no longer running.
type Listener interface {
	Close() error
}

// BusOption configures a bus.
type BusOption func(*busConfig)

type busConfig struct {
	namespace     string
	eventExchange string
	keyPrefix     string
	log           *slog.Logger
}

func newBusConfig(opts []BusOption) busConfig {
	c := busConfig{namespace: "celery", eventExchange: "celeryev", log: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func (c *busConfig) commandExchange() string { return c.namespace + ".pidbox" }
func (c *busConfig) replyExchange() string   { return "reply." + c.namespace + ".pidbox" }

// WithNamespace sets Celery's control_exchange, the mailbox namespace
// (default "celery": exchanges "celery.pidbox" and "reply.celery.pidbox").
func WithNamespace(ns string) BusOption { return func(c *busConfig) { c.namespace = ns } }

// WithEventExchange sets Celery's event_exchange (default "celeryev").
func WithEventExchange(name string) BusOption { return func(c *busConfig) { c.eventExchange = name } }

// WithKeyPrefix sets kombu's global_keyprefix for a Redis bus: it is
// prepended to channel names, binding sets and reply lists, as kombu's
// prefixed Redis client does. Open reads it from the URL's
// global_keyprefix query parameter.
func WithKeyPrefix(p string) BusOption { return func(c *busConfig) { c.keyPrefix = p } }

// WithLogger sets where connection problems and undecodable messages are
// reported (default slog.Default()).
func WithLogger(l *slog.Logger) BusOption {
	return func(c *busConfig) {
		if l != nil {
			c.log = l
		}
	}
}

// Open returns the bus for a broker: broker is the app's transport (a
// *redis.Broker lends its connection pool) and brokerURL Celery's
// broker_url (it gives the Redis DB number, or the RabbitMQ server and
// vhost, to which an AMQP bus opens connections of its own). A nil broker
// with a redis:// URL opens a client of its own. The memory transport has
// no bus: ErrUnsupported.
func Open(ctx context.Context, broker transport.Broker, brokerURL string, opts ...BusOption) (Bus, error) {
	if rb, ok := broker.(*redis.Broker); ok {
		db, err := RedisDB(brokerURL)
		if err != nil {
			return nil, err
		}
		return NewRedisBus(rb.Client(), db, append(urlOptions(brokerURL), opts...)...), nil
	}
	switch scheme(brokerURL) {
	case "amqp", "amqps", "pyamqp", "pyamqps":
		return OpenAMQP(ctx, brokerURL, opts...)
	case "redis", "rediss", "unix":
		if broker == nil {
			return OpenRedis(ctx, brokerURL, opts...)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, redact(brokerURL))
}

// urlOptions reads the bus options a Celery Redis URL carries
// (global_keyprefix).
func urlOptions(rawURL string) []BusOption {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	if p := u.Query().Get("global_keyprefix"); p != "" {
		return []BusOption{WithKeyPrefix(p)}
	}
	return nil
}

func scheme(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		return u[:i]
	}
	return ""
}

// RedisDB returns the database number of a Celery Redis URL: the path of
// redis://host:port/<db>, or the virtual_host (or db) query parameter of
// redis+socket:// and unix:// URLs; 0 when none is given. It appears in
// fanout channel names ("/<db>.celery.pidbox").
func RedisDB(rawURL string) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, fmt.Errorf("control: broker URL: %w", err)
	}
	s := ""
	switch u.Scheme {
	case "redis", "rediss":
		s = strings.Trim(u.Path, "/")
	default:
		q := u.Query()
		s = q.Get("virtual_host")
		if s == "" {
			s = q.Get("db")
		}
	}
	if s == "" {
		return 0, nil
	}
	db, err := strconv.Atoi(s)
	if err != nil || db < 0 {
		return 0, fmt.Errorf("control: broker URL %s: bad database number %q", redact(rawURL), s)
	}
	return db, nil
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// topicMatch reports whether routing key rk matches the AMQP topic
// pattern (words separated by '.', '*' one word, '#' zero or more).
func topicMatch(pattern, rk string) bool {
	return topicWords(strings.Split(pattern, "."), strings.Split(rk, "."))
}

func topicWords(p, k []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(k); i++ {
				if topicWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(k) == 0 {
				return false
			}
		default:
			if len(k) == 0 || k[0] != p[0] {
				return false
			}
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}

// MemoryBus is a Bus inside one process, for the memory transport, tests
// and examples: commands reach every command listener, replies the
// listeners of their oid, events the listeners whose key matches. Publish
// calls the callbacks synchronously. It is safe for concurrent use.
type MemoryBus struct {
	mu        sync.Mutex
	closed    bool
	listeners map[*memListener]struct{}
}

// NewMemoryBus returns an empty MemoryBus.
func NewMemoryBus() *MemoryBus { return &MemoryBus{listeners: map[*memListener]struct{}{}} }

type memKind uint8

const (
	memCommands memKind = iota
	memReplies
	memEvents
)

type memListener struct {
	b    *MemoryBus
	kind memKind
	key  string // oid (replies) or topic pattern (events)
	mu   sync.Mutex
	fn   func(*Message) // nil once closed, under mu
}

func (l *memListener) Close() error {
	l.b.mu.Lock()
	delete(l.b.listeners, l)
	l.b.mu.Unlock()
	l.mu.Lock() // waits for a running callback
	l.fn = nil
	l.mu.Unlock()
	return nil
}

func (b *MemoryBus) listen(kind memKind, key string, fn func(*Message)) (Listener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	l := &memListener{b: b, kind: kind, key: key, fn: fn}
	b.listeners[l] = struct{}{}
	return l, nil
}

func (b *MemoryBus) publish(kind memKind, key string, m *Message, exchange string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	var to []*memListener
	for l := range b.listeners {
		if l.kind != kind {
			continue
		}
		switch kind {
		case memReplies:
			if l.key != key {
				continue
			}
		case memEvents:
			if !topicMatch(l.key, key) {
				continue
			}
		}
		to = append(to, l)
	}
	b.mu.Unlock()
	for _, l := range to {
		c := *m
		c.Exchange, c.RoutingKey = exchange, key
		l.mu.Lock()
		if l.fn != nil {
			l.fn(&c)
		}
		l.mu.Unlock()
	}
	return nil
}

// PublishCommand implements Bus.
func (b *MemoryBus) PublishCommand(_ context.Context, m *Message) error {
	return b.publish(memCommands, "", m, "celery.pidbox")
}

// PublishReply implements Bus.
func (b *MemoryBus) PublishReply(_ context.Context, oid string, m *Message) error {
	return b.publish(memReplies, oid, m, "reply.celery.pidbox")
}

// PublishEvent implements Bus.
func (b *MemoryBus) PublishEvent(_ context.Context, rk string, m *Message) error {
	return b.publish(memEvents, rk, m, "celeryev")
}

// ListenCommands implements Bus.
func (b *MemoryBus) ListenCommands(_ context.Context, _ string, fn func(*Message)) (Listener, error) {
	return b.listen(memCommands, "", fn)
}

// ListenReplies implements Bus.
func (b *MemoryBus) ListenReplies(_ context.Context, oid string, fn func(*Message)) (Listener, error) {
	return b.listen(memReplies, oid, fn)
}

// ListenEvents implements Bus.
func (b *MemoryBus) ListenEvents(_ context.Context, key string, fn func(*Message)) (Listener, error) {
	return b.listen(memEvents, key, fn)
}

// Close implements Bus.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	b.closed = true
	ls := make([]*memListener, 0, len(b.listeners))
	for l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	return nil
}
