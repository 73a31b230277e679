package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// Broker is a kombu-compatible Redis broker: Python Celery workers and
// clients can share its queues. Create it with NewBroker. It is safe for
// concurrent use.
type Broker struct {
	cfg    *config
	client rueidis.Client
	log    *slog.Logger

	// Prefixed bookkeeping keys.
	unacked, unackedIndex, unackedMutex string

	mu        sync.RWMutex
	lists     map[string][]string // queue -> prefixed list key per priority step
	consumers map[*Consumer]struct{}
	closed    atomic.Bool

	avgEnvelope atomic.Int64 // recent envelope size, to size Publish buffers
	consumed    atomic.Bool  // a consumer was started (see Close)
}

var _ transport.Broker = (*Broker)(nil)

// NewBroker connects to the Redis server at url (see the package
// documentation for the URL forms and transport options) and returns a
// broker. ctx bounds the initial connection check.
func NewBroker(ctx context.Context, url string, opts ...Option) (*Broker, error) {
	cfg, client, err := newClient(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	p := cfg.keyPrefix
	return &Broker{
		cfg: cfg, client: client, log: cfg.logger,
		unacked: p + cfg.unackedKey, unackedIndex: p + cfg.unackedIndexKey, unackedMutex: p + cfg.unackedMutexKey,
		lists:     make(map[string][]string),
		consumers: make(map[*Consumer]struct{}),
	}, nil
}

// Client returns the underlying rueidis client, for commands this package
// does not offer. It is closed by Close.
func (b *Broker) Client() rueidis.Client { return b.client }

// listKeys returns the prefixed list names of queue, one per priority
// step, as kombu names them: the base list for step 0, then
// queue + "\x06\x16" + step. The slice is shared; do not modify it.
func (b *Broker) listKeys(queue []byte) []string {
	b.mu.RLock()
	keys, ok := b.lists[string(queue)] // no allocation for the lookup
	b.mu.RUnlock()
	if ok {
		return keys
	}
	name := string(queue)
	keys = make([]string, len(b.cfg.prioritySteps))
	for i, step := range b.cfg.prioritySteps {
		if step == 0 {
			keys[i] = b.cfg.keyPrefix + name
		} else {
			keys[i] = fmt.Sprintf("%s%s%s%d", b.cfg.keyPrefix, name, Sep, step)
		}
	}
	b.mu.Lock()
	if len(b.lists) > 4096 { // bound the cache against queue-name churn
		clear(b.lists)
	}
	b.lists[name] = keys
	b.mu.Unlock()
	return keys
}

// bucket returns the index of the priority step a message priority goes
// to: the largest step <= priority (kombu's bisect), with kombu's
// wrap-around to the last step when the priority is below the first.
func (b *Broker) bucket(priority uint8) int {
	p := min(int(priority), 9)
	steps := b.cfg.prioritySteps
	i := 0
	for i < len(steps) && steps[i] <= p {
		i++
	}
	if i == 0 {
		return len(steps) - 1 // Python's steps[-1]
	}
	return i - 1
}

// Publish implements transport.Broker: each message is encoded as kombu's
// envelope with a fresh delivery tag and LPUSHed to its queue's priority
// list, consecutive messages for the same list in one LPUSH and all lists
// in one round trip. With a non-empty exchange the queues come from
// kombu's binding set _kombu.binding.<exchange> (direct rows, then topic
// patterns); with none bound, the routing key names the queue.
//
// A connection error is retried, with backoff, for up to the retry
// timeout; a message whose LPUSH executed but whose reply was lost is then
// sent twice (at-least-once).
func (b *Broker) Publish(ctx context.Context, msgs ...*codec.Message) error {
	defer func() {
		for _, m := range msgs {
			codec.ReleaseMessage(m)
		}
	}()
	if b.closed.Load() {
		return ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	st := pubPool.Get().(*pubState)
	defer st.release()
	buf := getBuf(len(msgs) * int(b.avgEnvelope.Load()))
	for _, m := range msgs {
		m.NewDeliveryTag()
		start := len(buf.B)
		buf.B = codec.AppendRedisEnvelope(buf.B, m)
		it := pubItem{start: start, end: len(buf.B)}
		if len(m.Exchange) == 0 {
			keys := b.listKeys(m.RoutingKey)
			bk := b.bucket(m.Priority)
			it.keys = keys[bk : bk+1]
		} else {
			queues, err := st.route(ctx, b, m)
			if err != nil {
				putBuf(buf)
				return err
			}
			bk := b.bucket(m.Priority)
			for _, q := range queues {
				it.keys = append(it.keys, b.listKeys(unsafeconv.Bytes(q))[bk])
			}
		}
		st.items = append(st.items, it)
	}
	// Group consecutive messages for one list into one LPUSH.
	items := st.items
	for i := 0; i < len(items); {
		it := items[i]
		if len(it.keys) != 1 {
			for _, k := range it.keys {
				st.groups = append(st.groups, pubGroup{k, i, i + 1})
			}
			i++
			continue
		}
		j := i + 1
		for j < len(items) && len(items[j].keys) == 1 && items[j].keys[0] == it.keys[0] {
			j++
		}
		st.groups = append(st.groups, pubGroup{it.keys[0], i, j})
		i = j
	}
	// Views into buf.B are taken only now that it has stopped growing.
	// They are safe because every command is waited for with a context
	// that cannot end early: rueidis may still hold a command whose caller
	// gave up. After a connection error the buffer is not reused at all.
	build := func(g int) rueidis.Completed {
		grp := st.groups[g]
		st.elems = st.elems[:0]
		for _, x := range items[grp.from:grp.to] {
			st.elems = append(st.elems, unsafeconv.String(buf.B[x.start:x.end]))
		}
		return b.client.B().Lpush().Key(grp.key).Element(st.elems...).Build()
	}
	// Fast path: one round trip, no retry machinery.
	var failed bool
	if len(st.groups) == 1 {
		failed = b.client.Do(bg, build(0)).Error() != nil
	} else {
		for g := range st.groups {
			st.cmds = append(st.cmds, build(g))
		}
		failed = !allOK(b.client.DoMulti(bg, st.cmds...))
	}
	if failed {
		// rueidis may still hold the slice after a connection error.
		st.cmds = nil
	}
	if !failed {
		b.avgEnvelope.Store(int64(len(buf.B)/len(msgs)) + 64)
		putBuf(buf)
		return nil
	}
	// Slow path: send everything again with retries (a message that did
	// get through is then sent twice: at least once). buf is left to the
	// garbage collector.
	return b.doAll(ctx, "publish", len(st.groups), build)
}

// envBuf is a pooled envelope buffer.
type envBuf struct{ B []byte }

var bufPool = sync.Pool{New: func() any { return new(envBuf) }}

// maxPooledBuf is the largest envelope buffer kept for reuse.
const maxPooledBuf = 8 << 20

// getBuf returns an empty buffer with room for about n bytes.
func getBuf(n int) *envBuf {
	b := bufPool.Get().(*envBuf)
	b.B = slices.Grow(b.B[:0], n)
	return b
}

func putBuf(b *envBuf) {
	if cap(b.B) <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// bg is the context of commands whose reply must be awaited whatever the
// caller's context says.
var bg = context.Background()

// pubState is Publish's scratch space, pooled.
type pubState struct {
	items  []pubItem
	groups []pubGroup
	elems  []string
	cmds   rueidis.Commands
	routes map[string][]string // exchange + Sep + routing key -> queues
}

type pubItem struct {
	keys       []string // target lists
	start, end int      // envelope in the buffer
}

type pubGroup struct {
	key      string
	from, to int // items[from:to]
}

var pubPool = sync.Pool{New: func() any { return new(pubState) }}

func (st *pubState) release() {
	if cap(st.items) > 4096 { // do not keep huge batches' scratch
		*st = pubState{}
	}
	clear(st.items)
	clear(st.elems[:cap(st.elems)]) // drop views into the released buffer
	clear(st.cmds)
	st.items, st.groups, st.elems, st.cmds = st.items[:0], st.groups[:0], st.elems[:0], st.cmds[:0]
	clear(st.routes)
	pubPool.Put(st)
}

// route returns the queues m goes to through its exchange, looked up once
// per Publish call.
func (st *pubState) route(ctx context.Context, b *Broker, m *codec.Message) ([]string, error) {
	if st.routes == nil {
		st.routes = make(map[string][]string)
	}
	rk := string(m.Exchange) + Sep + string(m.RoutingKey)
	if queues, ok := st.routes[rk]; ok {
		return queues, nil
	}
	queues, err := b.route(ctx, string(m.Exchange), string(m.RoutingKey))
	if err != nil {
		return nil, err
	}
	st.routes[rk] = queues
	return queues, nil
}

// doAll runs n commands, made by build, in one round trip, rebuilding and
// retrying the ones that failed with a connection error. It waits for
// every reply regardless of ctx (see Publish); ctx only stops the retries.
func (b *Broker) doAll(ctx context.Context, what string, n int, build func(i int) rueidis.Completed) error {
	return doAll(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, what, n, build, nil)
}

// doAll is Broker.doAll for any client. fix, if not nil, is asked about
// each non-retriable error: true means it adjusted build (say, to send
// EVAL after a NOSCRIPT) and the command should be sent again.
func doAll(ctx context.Context, client rueidis.Client, budget time.Duration, log *slog.Logger, closed *atomic.Bool,
	what string, n int, build func(i int) rueidis.Completed, fix func(error) bool) error {
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	err := retry(ctx, budget, log, what, func() error {
		if closed.Load() {
			return ErrClosed
		}
		// A fresh slice per attempt: rueidis may still hold the last one.
		cmds := make(rueidis.Commands, 0, len(pending))
		for _, i := range pending {
			cmds = append(cmds, build(i))
		}
		var res []rueidis.RedisResult
		if len(cmds) == 1 {
			res = []rueidis.RedisResult{client.Do(bg, cmds[0])}
		} else {
			res = client.DoMulti(bg, cmds...)
		}
		var soft, hard error
		failed := pending[:0]
		for k, r := range res {
			err := r.Error()
			switch {
			case err == nil:
				continue
			case retriable(err):
				soft = cmp.Or(soft, err)
			case fix != nil && fix(err):
				soft = cmp.Or(soft, error(errRetry))
			default:
				hard = cmp.Or(hard, err)
			}
			failed = append(failed, pending[k])
		}
		pending = failed
		return cmp.Or(hard, soft)
	})
	if err != nil {
		return fmt.Errorf("redis: %s: %w", what, err)
	}
	return nil
}

// route returns the queues bound to exchange for routingKey, as kombu's
// _lookup does with the binding set: direct rows with the same routing
// key, else topic rows whose pattern matches; else the routing key itself.
func (b *Broker) route(ctx context.Context, exchange, routingKey string) ([]string, error) {
	var rows []string
	err := retry(ctx, b.cfg.retryTimeout, b.log, "binding lookup", func() error {
		var err error
		rows, err = b.client.Do(ctx, b.client.B().Smembers().Key(b.cfg.keyPrefix+"_kombu.binding."+exchange).Build()).AsStrSlice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redis: bindings of exchange %q: %w", exchange, err)
	}
	var direct, topic []string
	for _, row := range rows {
		parts := strings.SplitN(row, Sep, 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == routingKey:
			direct = append(direct, parts[2])
		case strings.ContainsAny(parts[0], "*#") && topicMatch(parts[0], routingKey):
			topic = append(topic, parts[2])
		}
	}
	out := direct
	if len(out) == 0 {
		out = topic
	}
	if len(out) == 0 {
		out = []string{routingKey}
	}
	return dedupe(out), nil
}

func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// topicMatch is AMQP topic matching: words separated by ".", "*" matches
// one word, "#" zero or more.
func topicMatch(pattern, key string) bool {
	pw, kw := strings.Split(pattern, "."), strings.Split(key, ".")
	var m func(i, j int) bool
	m = func(i, j int) bool {
		if i == len(pw) {
			return j == len(kw)
		}
		if pw[i] == "#" {
			for k := j; k <= len(kw); k++ {
				if m(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(kw) {
			return false
		}
		return (pw[i] == "*" || pw[i] == kw[j]) && m(i+1, j+1)
	}
	return m(0, 0)
}

// Bind records queue in kombu's binding set of exchange with routingKey
// (SADD _kombu.binding.<exchange> "<rk>\x06\x16\x06\x16<queue>"), as a
// kombu queue declaration does, so that publishers using the exchange
// (ours or Python's) find the queue.
func (b *Broker) Bind(ctx context.Context, exchange, routingKey, queue string) error {
	return b.doAll(ctx, "bind", 1, func(int) rueidis.Completed {
		return b.client.B().Sadd().Key(b.cfg.keyPrefix + "_kombu.binding." + exchange).Member(routingKey + Sep + Sep + queue).Build()
	})
}

// QueueLen returns the number of messages waiting in queue (all priority
// buckets).
func (b *Broker) QueueLen(ctx context.Context, queue string) (int, error) {
	keys := b.listKeys([]byte(queue))
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = b.client.B().Llen().Key(k).Build()
	}
	n := 0
	for _, r := range b.client.DoMulti(ctx, cmds...) {
		v, err := r.AsInt64()
		if err != nil {
			return 0, fmt.Errorf("redis: length of %q: %w", queue, err)
		}
		n += int(v)
	}
	return n, nil
}

// Len is QueueLen without a context or error (0 on error), matching the
// memory broker's method.
func (b *Broker) Len(queue string) int {
	n, _ := b.QueueLen(context.Background(), queue)
	return n
}

// PurgeQueue deletes the waiting messages of queue (all priority buckets,
// atomically) and returns how many there were. Messages fetched and not
// yet acknowledged are not touched.
func (b *Broker) PurgeQueue(ctx context.Context, queue string) (int, error) {
	r := luaPurge.exec(ctx, b.client, b.listKeys([]byte(queue)), nil)
	n, err := r.AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redis: purge %q: %w", queue, err)
	}
	return int(n), nil
}

// Purge is PurgeQueue for the CLI's purge command: errors are logged and
// count as 0.
func (b *Broker) Purge(queue string) int {
	n, err := b.PurgeQueue(context.Background(), queue)
	if err != nil {
		b.log.Error("redis: purge failed", "queue", queue, "err", err)
	}
	return n
}

// Close closes every consumer still open (requeueing what they hold) and
// then the connections. It is safe to call more than once.
func (b *Broker) Close() error {
	if b.closed.Load() {
		return nil
	}
	b.mu.Lock()
	cs := make([]*Consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.closed.Swap(true) {
		return nil
	}
	if b.consumed.Load() {
		// Take our skiplist sentinel out again (live consumers elsewhere
		// put it back within their restore interval), so that an idle
		// Redis is left with kombu's keys only.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b.client.Do(ctx, b.client.B().Zrem().Key(b.unackedIndex).Member(skiplistSentinel).Build())
		cancel()
	}
	b.client.Close()
	return errors.Join(errs...)
}
