package control

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/bytebufferpool"

	"github.com/celerity-go/celerity/transport/redis"
)

// RedisBus is the Bus of kombu's Redis transport (celery-wire.md §3.7,
// §8.1). Broadcasts (commands, events) are PUB/SUB messages on channels
// "/<db>.<exchange>[/<routing key>]" holding kombu's JSON envelope, and
// subscribers PSUBSCRIBE with the binding key ('#' becomes '*'). Replies
// are list messages: the worker looks the reply exchange's bindings up
// (SMEMBERS _kombu.binding.reply.celery.pidbox) and LPUSHes to the bound
// queues; the client records its binding and BRPOPs its list
// "<oid>.reply.celery.pidbox", deleting both when it stops.
//
// Each subscription holds a dedicated connection and resubscribes after
// losing it. kombu's global_keyprefix (WithKeyPrefix) is prepended to
// channels, binding sets and reply lists as kombu does. RedisBus is safe
// for concurrent use.
type RedisBus struct {
	client rueidis.Client
	owns   bool
	db     int
	cfg    busConfig

	mu        sync.Mutex
	closed    bool
	listeners map[*redisListener]struct{}
}

// NewRedisBus returns a bus over client, a connection to database db of
// the broker. The client stays the caller's: Close does not close it.
func NewRedisBus(client rueidis.Client, db int, opts ...BusOption) *RedisBus {
	return &RedisBus{client: client, db: db, cfg: newBusConfig(opts), listeners: map[*redisListener]struct{}{}}
}

// OpenRedis connects to the Redis server of a redis://, rediss:// or
// unix:// URL and returns a bus that owns the connection.
func OpenRedis(ctx context.Context, rawURL string, opts ...BusOption) (*RedisBus, error) {
	db, err := RedisDB(rawURL)
	if err != nil {
		return nil, err
	}
	// rueidis reads the scheme, address, credentials and DB; kombu's
	// transport options in the query are not its business.
	u := rawURL
	if i := strings.IndexByte(u, '?'); i >= 0 && scheme(u) != "unix" {
		u = u[:i]
	}
	opt, err := rueidis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("control: redis URL %s: %w", redact(rawURL), err)
	}
	opt.DisableCache = true
	opt.ClientName = "celerity-control"
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("control: connect %s: %w", redact(rawURL), err)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("control: connect %s: %w", redact(rawURL), err)
	}
	b := NewRedisBus(c, db, append(urlOptions(rawURL), opts...)...)
	b.owns = true
	return b, nil
}

func (b *RedisBus) channel(exchange, rk string) string {
	s := b.cfg.keyPrefix + "/" + strconv.Itoa(b.db) + "." + exchange
	if rk != "" {
		s += "/" + rk
	}
	return s
}

var envPool bytebufferpool.Pool

func (b *RedisBus) publishChannel(ctx context.Context, exchange, rk string, m *Message) error {
	buf := envPool.Get()
	defer envPool.Put(buf)
	buf.B = appendEnvelope(buf.B[:0], m, exchange, rk)
	ch := b.channel(exchange, rk)
	err := b.client.Do(ctx, b.client.B().Publish().Channel(ch).Message(rueidis.BinaryString(buf.B)).Build()).Error()
	if err != nil {
		return fmt.Errorf("control: redis PUBLISH %s: %w", ch, err)
	}
	return nil
}

// PublishCommand implements Bus: PUBLISH /<db>.celery.pidbox.
func (b *RedisBus) PublishCommand(ctx context.Context, m *Message) error {
	return b.publishChannel(ctx, b.cfg.commandExchange(), "", m)
}

// PublishEvent implements Bus: PUBLISH /<db>.celeryev/<rk>.
func (b *RedisBus) PublishEvent(ctx context.Context, rk string, m *Message) error {
	return b.publishChannel(ctx, b.cfg.eventExchange, rk, m)
}

// PublishEvents publishes several events (msgs[i] with routing key
// rks[i]) in one round trip: the event dispatcher uses it to send all the
// batches it has at once instead of one PUBLISH per batch.
func (b *RedisBus) PublishEvents(ctx context.Context, rks []string, msgs []*Message) error {
	if len(rks) != len(msgs) {
		return fmt.Errorf("control: PublishEvents: %d routing keys for %d messages", len(rks), len(msgs))
	}
	bufs := make([]*bytebufferpool.ByteBuffer, len(msgs))
	cmds := make(rueidis.Commands, len(msgs))
	for i, m := range msgs {
		bufs[i] = envPool.Get()
		bufs[i].B = appendEnvelope(bufs[i].B[:0], m, b.cfg.eventExchange, rks[i])
		cmds[i] = b.client.B().Publish().Channel(b.channel(b.cfg.eventExchange, rks[i])).Message(rueidis.BinaryString(bufs[i].B)).Build()
	}
	var first error
	for _, r := range b.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && first == nil {
			first = fmt.Errorf("control: redis PUBLISH events: %w", err)
		}
	}
	for _, buf := range bufs {
		envPool.Put(buf)
	}
	return first
}

// PublishReply implements Bus: LPUSH to the queues bound to the reply
// exchange with routing key oid, as kombu's direct exchange routes.
func (b *RedisBus) PublishReply(ctx context.Context, oid string, m *Message) error {
	ex := b.cfg.replyExchange()
	rows, err := b.client.Do(ctx, b.client.B().Smembers().Key(b.cfg.keyPrefix+"_kombu.binding."+ex).Build()).AsStrSlice()
	if err != nil {
		return fmt.Errorf("control: redis SMEMBERS _kombu.binding.%s: %w", ex, err)
	}
	buf := envPool.Get()
	defer envPool.Put(buf)
	buf.B = appendEnvelope(buf.B[:0], m, ex, oid)
	var cmds rueidis.Commands
	for _, row := range rows {
		parts := strings.Split(row, redis.Sep)
		if len(parts) != 3 || parts[0] != oid {
			continue
		}
		cmds = append(cmds, b.client.B().Lpush().Key(b.cfg.keyPrefix+parts[2]).Element(rueidis.BinaryString(buf.B)).Build())
	}
	for _, r := range b.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("control: redis LPUSH reply to %s: %w", oid, err)
		}
	}
	return nil
}

// ListenCommands implements Bus: PSUBSCRIBE /<db>.celery.pidbox.
func (b *RedisBus) ListenCommands(ctx context.Context, _ string, fn func(*Message)) (Listener, error) {
	return b.psubscribe(ctx, b.channel(b.cfg.commandExchange(), ""), fn)
}

// ListenEvents implements Bus: PSUBSCRIBE /<db>.celeryev/<key, '#' -> '*'>.
func (b *RedisBus) ListenEvents(ctx context.Context, key string, fn func(*Message)) (Listener, error) {
	return b.psubscribe(ctx, b.channel(b.cfg.eventExchange, strings.ReplaceAll(key, "#", "*")), fn)
}

// ListenReplies implements Bus: SADD the binding row of the reply queue,
// then BRPOP it; Close removes the row and the list.
func (b *RedisBus) ListenReplies(ctx context.Context, oid string, fn func(*Message)) (Listener, error) {
	ex := b.cfg.replyExchange()
	row := oid + redis.Sep + redis.Sep + oid + "." + ex
	queue := b.cfg.keyPrefix + oid + "." + ex
	bindings := b.cfg.keyPrefix + "_kombu.binding." + ex
	if err := b.client.Do(ctx, b.client.B().Sadd().Key(bindings).Member(row).Build()).Error(); err != nil {
		return nil, fmt.Errorf("control: redis SADD reply binding: %w", err)
	}
	l, err := b.add()
	if err != nil {
		return nil, err
	}
	l.cleanup = func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := b.client
		c.DoMulti(cctx,
			c.B().Srem().Key(bindings).Member(row).Build(),
			c.B().Del().Key(queue, queue+redis.Sep+"3", queue+redis.Sep+"6", queue+redis.Sep+"9").Build())
	}
	go l.run(func() {
		backoff := 10 * time.Millisecond
		for !l.stopped() {
			// A short timeout keeps Close quick: rueidis cannot cancel a
			// blocking command on the wire.
			res := b.client.Do(l.ctx, b.client.B().Brpop().Key(queue).Timeout(0.2).Build())
			vals, err := res.AsStrSlice()
			switch {
			case rueidis.IsRedisNil(err):
				backoff = 10 * time.Millisecond
				continue
			case err != nil:
				if l.stopped() {
					return
				}
				b.cfg.log.Warn("control: redis BRPOP of replies failed", "queue", queue, "err", err, "retry_in", backoff)
				if !l.sleep(backoff) {
					return
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
			if len(vals) == 2 {
				b.deliver(l, []byte(vals[1]), fn)
			}
		}
	})
	return l, nil
}

func (b *RedisBus) deliver(l *redisListener, env []byte, fn func(*Message)) {
	var m Message
	if err := decodeEnvelope(env, &m); err != nil {
		b.cfg.log.Warn("control: dropping undecodable message", "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped() {
		fn(&m)
	}
}

// psubscribe subscribes pattern on a dedicated connection, returning
// once the server confirmed it, and resubscribes after connection loss.
func (b *RedisBus) psubscribe(ctx context.Context, pattern string, fn func(*Message)) (Listener, error) {
	l, err := b.add()
	if err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go l.run(func() {
		first := true
		backoff := 10 * time.Millisecond
		for !l.stopped() {
			dc, release := b.client.Dedicate()
			lost := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(pm rueidis.PubSubMessage) {
				b.deliver(l, []byte(pm.Message), fn)
			}})
			err := dc.Do(l.ctx, dc.B().Psubscribe().Pattern(pattern).Build()).Error()
			if first {
				first = false
				ready <- err
				if err != nil {
					dc.Close()
					release()
					return
				}
			}
			if err == nil {
				backoff = 10 * time.Millisecond
				select {
				case err = <-lost:
				case <-l.ctx.Done():
				}
			}
			dc.Close()
			release()
			if l.stopped() {
				return
			}
			b.cfg.log.Warn("control: redis subscription lost; resubscribing", "pattern", pattern, "err", err, "retry_in", backoff)
			if !l.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	})
	select {
	case err := <-ready:
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("control: redis PSUBSCRIBE %s: %w", pattern, err)
		}
		return l, nil
	case <-ctx.Done():
		l.Close()
		return nil, ctx.Err()
	}
}

// Close implements Bus: it closes the listeners, and the client when the
// bus opened it.
func (b *RedisBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ls := make([]*redisListener, 0, len(b.listeners))
	for l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	if b.owns {
		b.client.Close()
	}
	return nil
}

func (b *RedisBus) add() (*redisListener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	l := &redisListener{b: b, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	b.listeners[l] = struct{}{}
	return l, nil
}

// redisListener is one subscription's goroutine.
type redisListener struct {
	b       *RedisBus
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex // held while the callback runs
	once    sync.Once
	cleanup func()
}

func (l *redisListener) run(loop func()) {
	defer close(l.done)
	loop()
}

func (l *redisListener) stopped() bool { return l.ctx.Err() != nil }

func (l *redisListener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// Close implements Listener.
func (l *redisListener) Close() error {
	l.once.Do(func() {
		l.cancel()
		<-l.done
		l.mu.Lock() // a callback from rueidis's reader may still be running
		l.mu.Unlock()
		if l.cleanup != nil {
			l.cleanup()
		}
		l.b.mu.Lock()
		delete(l.b.listeners, l)
		l.b.mu.Unlock()
	})
	return nil
}
