package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// maxBatch bounds one fetch script call (its HSET/ZADD argument lists).
const maxBatch = 1000

// unlimitedWindow bounds the envelopes a consumer without a prefetch
// limit (prefetch 0) fetches ahead of its caller.
const unlimitedWindow = maxBatch

// minBatchWindow is the smallest prefetch window for which the fetcher,
// while messages are held, waits until an eighth of the window is free
// instead of fetching as soon as one slot is.
const minBatchWindow = 32

// ackLinger is how long an acknowledgement may wait for a fetch to carry
// it before the flusher sends it on its own.
const ackLinger = time.Millisecond

// maxPendingAcks bounds the acknowledgements waiting to be sent; Ack sends
// them itself beyond it.
const maxPendingAcks = 4096

// watchTimeout is the server-side timeout of a watcher's BLMOVE; a
// watcher re-issues it while the fetcher is still waiting.
const watchTimeout = 5 // seconds

// Consumer takes messages from a Broker's queues. See transport.Consumer;
// its methods are safe for concurrent use except that Fetch has one caller
// at a time.
//
// A fetcher goroutine keeps the prefetch window full: it runs the fetch
// script whenever there is room and buffers the envelopes it gets (they
// are already recorded as unacknowledged, and count against the window);
// Fetch decodes buffered envelopes and returns them. The script for the
// next batch thus runs while the caller handles the previous one.
//
// Fetched messages carry, in Tag, this consumer's handle for them; callers
// must not change Tag or DeliveryTag.
type Consumer struct {
	b  *Broker
	rr bool   // round robin between queues
	id string // random: names tagless envelopes, mutex tokens

	// queues is the queue set, replaced whole by AddQueue and CancelQueue
	// (under queuesMu); the fetcher loads it once per fetch. scriptMu is
	// held by the fetcher while its script runs, so that CancelQueue can
	// wait for a fetch that still used the old set.
	queues   atomic.Pointer[queueSet]
	queuesMu sync.Mutex
	scriptMu sync.Mutex

	// The fetcher's own state.
	next           int // round-robin start
	keyBuf, argBuf []string
	lost           []string // scores of fetches whose reply was lost (under mu)
	nStr           string   // cached decimal of nLast
	nLast          int
	scoreBuf       []byte
	spareAcks      []string // the previous acks slice, for reuse

	// Fetch's own state; fetchMu is held while Fetch moves envelopes
	// from raw to slots (Close waits for it).
	fetchMu sync.Mutex
	take    []rawMsg

	mu       sync.Mutex
	slots    []slot   // messages handed to the caller
	free     []int32  // free slot indexes
	raw      []rawMsg // envelopes fetched and not yet handed out, FIFO
	rawHead  int
	held     int // slots in use + buffered envelopes
	prefetch int
	seq      uint64

	ackMu   sync.Mutex
	acks    []string      // acknowledged tags not yet sent (see Ack)
	ackKick chan struct{} // wakes the ack flusher

	room    chan struct{} // an ack, reject or SetPrefetch made room
	ready   chan struct{} // the fetcher buffered envelopes
	wake    chan struct{} // a watcher saw a list become non-empty
	waiting atomic.Bool   // the fetcher found nothing and wants watchers

	closed   atomic.Bool
	done     chan struct{}
	bg       context.Context
	cancelBg context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// queueSet is the queues a consumer reads, in its order. It is never
// changed once published: AddQueue and CancelQueue publish a new one.
type queueSet struct {
	queues []consumedQueue
	nqStr  string // decimal of len(queues)
}

// consumedQueue is one queue of a queueSet.
type consumedQueue struct {
	name     string
	qjson    string     // JSON-quoted name, for the fetch script
	lists    []string   // prefixed list keys, one per priority bucket
	watchers []*watcher // one per list
}

// watcher wakes the fetcher when its list gets a message (see watch).
type watcher struct {
	key  string
	arm  chan struct{} // the fetcher wants to know
	stop chan struct{} // closed when the queue is cancelled
}

func (qs *queueSet) names() []string {
	out := make([]string, len(qs.queues))
	for i := range qs.queues {
		out[i] = qs.queues[i].name
	}
	return out
}

// slot is one message handed to the caller and not yet acknowledged.
type slot struct {
	m   *codec.Message
	tag string // key in unacked / unacked_index
	seq uint64 // fetch order
}

// rawMsg is one fetched envelope not yet handed to the caller.
type rawMsg struct {
	env string
	tag string
	seq uint64
}

var _ transport.Consumer = (*Consumer)(nil)

// Consume implements transport.Broker. It records each queue in kombu's
// binding set of the exchange of the same name (as a kombu worker's queue
// declaration does) and starts the fetcher, the watchers that wake it when
// a list gets a message, the heartbeat that keeps this consumer's
// unacknowledged messages from being restored while it lives, the periodic
// restore of messages abandoned by dead consumers and the acknowledgement
// flusher. The result is a *Consumer.
func (b *Broker) Consume(ctx context.Context, queues []string, prefetch int) (transport.Consumer, error) {
	if len(queues) == 0 {
		return nil, errors.New("redis: consume: no queues")
	}
	if prefetch < 0 {
		return nil, fmt.Errorf("redis: consume: negative prefetch %d", prefetch)
	}
	if b.closed.Load() {
		return nil, ErrClosed
	}
	names := dedupe(slices.Clone(queues))
	if b.cfg.queueOrder == "sorted" {
		slices.Sort(names)
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	c := &Consumer{
		b: b, rr: b.cfg.queueOrder == "round_robin",
		id: hex.EncodeToString(idb[:]), prefetch: prefetch,
		room: make(chan struct{}, 1), ready: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		done: make(chan struct{}), ackKick: make(chan struct{}, 1),
	}
	qs := &queueSet{}
	for _, q := range names {
		cq, err := c.newQueue(q)
		if err != nil {
			return nil, err
		}
		qs.queues = append(qs.queues, cq)
	}
	if err := c.declare(ctx, names...); err != nil {
		return nil, err
	}
	qs.nqStr = strconv.Itoa(len(qs.queues))
	c.queues.Store(qs)
	c.bg, c.cancelBg = context.WithCancel(context.Background())
	for i := range qs.queues {
		c.startWatchers(&qs.queues[i])
	}
	c.wg.Add(4)
	go c.fetcher()
	go c.heartbeat()
	go c.restorer()
	go c.ackFlusher()
	b.mu.Lock()
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	b.consumed.Store(true)
	return c, nil
}

// newQueue prepares queue name for the queue set (its watchers are not
// started yet).
func (c *Consumer) newQueue(name string) (consumedQueue, error) {
	if name == "" {
		return consumedQueue{}, errors.New("redis: consume: empty queue name")
	}
	quoted, err := json.Marshal(name)
	if err != nil {
		return consumedQueue{}, fmt.Errorf("redis: consume: queue name %q: %w", name, err)
	}
	cq := consumedQueue{name: name, qjson: string(quoted), lists: c.b.listKeys([]byte(name))}
	for _, key := range cq.lists {
		cq.watchers = append(cq.watchers, &watcher{key: key, arm: make(chan struct{}, 1), stop: make(chan struct{})})
	}
	return cq, nil
}

// declare records each queue in kombu's binding set of the exchange of
// the same name, as a kombu worker's queue declaration does.
func (c *Consumer) declare(ctx context.Context, names ...string) error {
	b := c.b
	return b.doAll(ctx, "declare bindings", len(names), func(i int) rueidis.Completed {
		q := names[i]
		return b.client.B().Sadd().Key(b.cfg.keyPrefix + "_kombu.binding." + q).Member(q + Sep + Sep + q).Build()
	})
}

func (c *Consumer) startWatchers(q *consumedQueue) {
	for _, w := range q.watchers {
		c.wg.Add(1)
		go c.watch(w)
	}
}

// Queues returns the queues this consumer reads, in its order.
func (c *Consumer) Queues() []string { return c.queues.Load().names() }

// AddQueue implements transport.Consumer: the queue joins the fetch script's
// list (at the end, or in name order with the "sorted" queue order) and
// gets its watchers.
func (c *Consumer) AddQueue(ctx context.Context, name string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.queuesMu.Lock()
	defer c.queuesMu.Unlock()
	old := c.queues.Load()
	if slices.ContainsFunc(old.queues, func(q consumedQueue) bool { return q.name == name }) {
		return nil
	}
	cq, err := c.newQueue(name)
	if err != nil {
		return err
	}
	if err := c.declare(ctx, name); err != nil {
		return err
	}
	qs := &queueSet{queues: append(slices.Clip(old.queues), cq)}
	if c.b.cfg.queueOrder == "sorted" {
		slices.SortStableFunc(qs.queues, func(a, b consumedQueue) int { return strings.Compare(a.name, b.name) })
	}
	qs.nqStr = strconv.Itoa(len(qs.queues))
	c.queues.Store(qs)
	c.startWatchers(&qs.queues[len(qs.queues)-1])
	c.notify() // the fetcher may be waiting for watchers that did not watch this queue
	return nil
}

// CancelQueue implements transport.Consumer: the queue leaves the fetch
// script's list, its watchers stop, and CancelQueue waits for a fetch
// still running with the old list. Envelopes already buffered from the
// queue are handed out by Fetch as usual.
func (c *Consumer) CancelQueue(_ context.Context, name string) error {
	c.queuesMu.Lock()
	defer c.queuesMu.Unlock()
	old := c.queues.Load()
	i := slices.IndexFunc(old.queues, func(q consumedQueue) bool { return q.name == name })
	if i < 0 {
		return nil
	}
	qs := &queueSet{queues: slices.Delete(slices.Clone(old.queues), i, i+1)}
	qs.nqStr = strconv.Itoa(len(qs.queues))
	c.queues.Store(qs)
	for _, w := range old.queues[i].watchers {
		close(w.stop)
	}
	c.scriptMu.Lock() // a fetch that loaded the old set has finished
	c.scriptMu.Unlock()
	return nil
}

// Fetch implements transport.Consumer: it hands out up to len(dst)
// envelopes the fetcher has buffered, decoded, waiting (without polling)
// until there is at least one. Envelopes that do not decode are logged,
// acknowledged (dropped, as Celery does) and not returned.
func (c *Consumer) Fetch(ctx context.Context, dst []*codec.Message) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		if c.closed.Load() {
			return 0, ErrClosed
		}
		n, took, err := c.takeBuffered(dst)
		if n > 0 || err != nil {
			return n, err
		}
		if took > 0 {
			continue // only undecodable envelopes: look again at once
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-c.done:
			return 0, ErrClosed
		}
	}
}

// takeBuffered decodes up to len(dst) buffered envelopes into dst: n
// messages out of took envelopes.
func (c *Consumer) takeBuffered(dst []*codec.Message) (n, took int, err error) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	if c.closed.Load() {
		return 0, 0, ErrClosed
	}
	c.mu.Lock()
	k := min(len(dst), len(c.raw)-c.rawHead)
	c.take = append(c.take[:0], c.raw[c.rawHead:c.rawHead+k]...)
	clear(c.raw[c.rawHead : c.rawHead+k])
	c.rawHead += k
	if c.rawHead == len(c.raw) {
		c.raw, c.rawHead = c.raw[:0], 0
	}
	c.mu.Unlock()
	if k == 0 {
		return 0, 0, nil
	}
	var garbage []string
	for i := range c.take {
		r := &c.take[i]
		m := codec.AcquireMessage()
		if err := codec.DecodeRedisEnvelope(unsafeconv.Bytes(r.env), m); err != nil {
			codec.ReleaseMessage(m)
			garbage = append(garbage, r.tag)
			c.b.log.Error("redis: dropping a message that does not decode", "err", err,
				"queues", c.Queues(), "message", truncate(r.env, 512))
			r.env = ""
			continue
		}
		dst[n] = m
		n++
	}
	c.mu.Lock()
	j := 0
	for i := range c.take {
		if c.take[i].env != "" {
			c.track(dst[j], c.take[i].tag, c.take[i].seq)
			j++
		}
	}
	c.held -= len(garbage)
	c.mu.Unlock()
	clear(c.take)
	if len(garbage) > 0 {
		if err := c.queueAcks(garbage); err != nil {
			c.b.log.Error("redis: could not drop undecodable messages", "err", err)
		}
		c.signalRoom()
	}
	return n, k, nil
}

// fetcher keeps the prefetch window full (see Consumer).
func (c *Consumer) fetcher() {
	defer c.wg.Done()
	backoff := 10 * time.Millisecond
	for !c.closed.Load() {
		c.mu.Lock()
		var room, least int
		if c.prefetch > 0 {
			room, least = c.prefetch-c.held, 1
			if c.held > 0 && c.prefetch >= minBatchWindow {
				// Work is in hand: wait for a worthwhile batch rather
				// than fetching a few messages per acknowledgement.
				least = c.prefetch / 8
			}
		} else {
			room, least = unlimitedWindow-(len(c.raw)-c.rawHead), 1
		}
		c.mu.Unlock()
		if room < least {
			select {
			case <-c.room:
			case <-c.done:
				return
			}
			continue
		}
		n, err := c.fetchOnce(min(room, maxBatch))
		if err != nil {
			if c.closed.Load() {
				return
			}
			c.b.log.Warn("redis: fetch failed", "queues", c.Queues(), "err", err, "retry_in", backoff)
			if !sleep(c.done, backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		if n > 0 {
			c.waiting.Store(false)
			select {
			case c.ready <- struct{}{}:
			default:
			}
			continue
		}
		// Nothing to fetch: let the watchers tell us when there is.
		c.waiting.Store(true)
		for _, q := range c.queues.Load().queues {
			for _, w := range q.watchers {
				select {
				case w.arm <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
	}
}

// fetchOnce runs the fetch script once for up to want messages (and the
// pending acknowledgements) and buffers what it gets. It returns how many
// envelopes it buffered.
func (c *Consumer) fetchOnce(want int) (int, error) {
	b := c.b
	if err := c.recoverLost(); err != nil {
		return 0, err
	}
	c.scriptMu.Lock()
	defer c.scriptMu.Unlock()
	qs := c.queues.Load()
	nq := len(qs.queues)
	if nq == 0 {
		return 0, nil // every queue cancelled: wait for AddQueue's wake-up
	}
	if c.next >= nq {
		c.next = 0
	}
	keys := append(c.keyBuf[:0], b.unackedIndex, b.unacked)
	for bk := range b.cfg.prioritySteps {
		for k := range nq {
			keys = append(keys, qs.queues[(c.next+k)%nq].lists[bk])
		}
	}
	if want != c.nLast || c.nStr == "" {
		c.nLast, c.nStr = want, strconv.Itoa(want)
	}
	// The score is unique to this fetch (it finds the fetch's messages
	// again if the reply is lost, and names tagless envelopes); it is a
	// view of scoreBuf until it has to outlive the call.
	c.scoreBuf = strconv.AppendFloat(c.scoreBuf[:0], float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	score := unsafeconv.String(c.scoreBuf)
	rr := "0"
	if c.rr && nq > 1 {
		rr = "1"
	}
	args := append(c.argBuf[:0], c.nStr, score, c.id, qs.nqStr, rr)
	for k := range nq {
		args = append(args, qs.queues[(c.next+k)%nq].qjson)
	}
	c.ackMu.Lock()
	acks := c.acks
	args = append(args, acks...)
	c.acks = c.spareAcks[:0]
	c.ackMu.Unlock()
	c.keyBuf, c.argBuf = keys, args

	// Never cancelled: once the script may have run, its reply must be
	// read, or the popped messages would wait for the visibility timeout.
	res := luaFetch.exec(bg, b.client, keys, args)
	arr, err := res.ToArray()
	if err != nil && !rueidis.IsRedisNil(err) && len(acks) > 0 {
		c.ackMu.Lock() // not sent, or maybe sent: acks are idempotent, send again
		c.acks = append(c.acks, acks...)
		c.ackMu.Unlock()
		acks = nil
	}
	clear(acks)
	c.spareAcks = acks
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return 0, nil
		}
		if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
			// The script may have run: find its messages by their score
			// and put them back before the next fetch.
			c.mu.Lock()
			c.lost = append(c.lost, strings.Clone(score))
			c.mu.Unlock()
		}
		return 0, fmt.Errorf("redis: fetch: %w", err)
	}
	if len(arr) == 0 {
		return 0, nil
	}
	if c.rr && nq > 1 {
		c.next = (c.next + 1) % nq
	}
	c.mu.Lock()
	for i := range arr {
		env, err := arr[i].ToString()
		if err != nil {
			env = "" // not a string: cannot happen with this script; dropped by Fetch
		}
		tag := deliveryTag(env)
		if tag == "" { // as the script names it
			tag = c.id + ":" + score + ":" + strconv.Itoa(i+1)
		}
		c.seq++
		c.raw = append(c.raw, rawMsg{env: env, tag: tag, seq: c.seq})
	}
	c.held += len(arr)
	c.mu.Unlock()
	return len(arr), nil
}

// recoverLost puts back the messages of fetches whose reply was lost: they
// are the unacked entries recorded with that fetch's score.
func (c *Consumer) recoverLost() error {
	b := c.b
	for {
		c.mu.Lock()
		if len(c.lost) == 0 {
			c.mu.Unlock()
			return nil
		}
		s := c.lost[0]
		c.mu.Unlock()
		tags, err := b.client.Do(bg, b.client.B().Zrangebyscore().Key(b.unackedIndex).Min(s).Max(s).Build()).AsStrSlice()
		if err != nil {
			return fmt.Errorf("redis: recover lost fetch: %w", err)
		}
		if len(tags) > 0 {
			if err := c.restore(bg, tags, false, false); err != nil {
				return err
			}
			b.log.Warn("redis: requeued messages of a fetch whose reply was lost", "count", len(tags))
		}
		c.mu.Lock()
		c.lost = c.lost[1:]
		c.mu.Unlock()
	}
}

// track records m as handed out under tag. c.mu is held; m was counted in
// held as a buffered envelope.
func (c *Consumer) track(m *codec.Message, tag string, seq uint64) {
	s := slot{m: m, tag: tag, seq: seq}
	if k := len(c.free); k > 0 {
		i := c.free[k-1]
		c.free = c.free[:k-1]
		c.slots[i] = s
		m.Tag = uint64(i) + 1
	} else {
		c.slots = append(c.slots, s)
		m.Tag = uint64(len(c.slots))
	}
}

// untrack forgets m and returns its tag; ok is false if c does not hold m.
// c.mu is held.
func (c *Consumer) untrack(m *codec.Message) (tag string, ok bool) {
	i := m.Tag - 1
	if m.Tag == 0 || i >= uint64(len(c.slots)) || c.slots[i].m != m {
		return "", false
	}
	tag = c.slots[i].tag
	c.slots[i] = slot{}
	c.free = append(c.free, int32(i))
	m.Tag = 0
	c.held--
	return tag, true
}

func (c *Consumer) signalRoom() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// untrackAll untracks msgs, returning their tags and ErrNotHeld if some
// were not held.
func (c *Consumer) untrackAll(msgs []*codec.Message) ([]string, error) {
	tags := make([]string, 0, len(msgs))
	var err error
	c.mu.Lock()
	for _, m := range msgs {
		if tag, ok := c.untrack(m); ok {
			tags = append(tags, tag)
		} else {
			err = ErrNotHeld
		}
	}
	c.mu.Unlock()
	if len(tags) > 0 {
		c.signalRoom()
	}
	return tags, err
}

// Ack implements transport.Consumer. The tags are removed from the
// unacked bookkeeping (ZREM unacked_index + HDEL unacked) by the next fetch
// script, or by a background flush at most about a millisecond later: a
// batch of acknowledgements costs no round trip of its own. As with AMQP's
// basic.ack, Ack returns before Redis has the acknowledgement; Close
// sends what is pending. Connection errors are retried (acks are
// idempotent) and logged.
func (c *Consumer) Ack(msgs ...*codec.Message) error {
	tags, err := c.untrackAll(msgs)
	if len(tags) == 0 {
		return err
	}
	return errors.Join(err, c.queueAcks(tags))
}

// queueAcks queues tags for the next fetch or flush.
func (c *Consumer) queueAcks(tags []string) error {
	c.ackMu.Lock()
	c.acks = append(c.acks, tags...)
	flush := len(c.acks) >= maxPendingAcks
	c.ackMu.Unlock()
	if flush {
		return c.flushAcks()
	}
	select {
	case c.ackKick <- struct{}{}:
	default:
	}
	return nil
}

// flushAcks sends the pending acknowledgements.
func (c *Consumer) flushAcks() error {
	c.ackMu.Lock()
	tags := c.acks
	c.acks = nil
	c.ackMu.Unlock()
	if len(tags) == 0 {
		return nil
	}
	var errs []error
	for len(tags) > 0 {
		chunk := tags[:min(len(tags), maxBatch)]
		tags = tags[len(chunk):]
		errs = append(errs, c.forget(chunk))
	}
	return errors.Join(errs...)
}

// ackFlusher sends acknowledgements that no fetch carried within
// ackLinger.
func (c *Consumer) ackFlusher() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ackKick:
		case <-c.done:
			return
		}
		if !sleep(c.done, ackLinger) {
			return
		}
		if err := c.flushAcks(); err != nil {
			c.b.log.Error("redis: acknowledgements failed; the messages will be redelivered", "err", err)
		}
	}
}

// forget removes tags from the unacked bookkeeping.
func (c *Consumer) forget(tags []string) error {
	b := c.b
	keys := []string{b.unackedIndex, b.unacked}
	return runScript(bg, c.b, "ack", luaAck, keys, tags)
}

// Reject implements transport.Consumer, with kombu's semantics: a requeued
// message is taken from the unacked hash, flagged redelivered and LPUSHed
// (to the back of its queue); a dropped one is just forgotten.
func (c *Consumer) Reject(requeue bool, msgs ...*codec.Message) error {
	tags, err := c.untrackAll(msgs)
	if len(tags) == 0 {
		return err
	}
	if requeue {
		return errors.Join(err, c.restore(bg, tags, true, true))
	}
	return errors.Join(err, c.forget(tags))
}

// restore puts tags back on their queues (kombu's restore_by_tag): LPUSH
// when leftmost, else RPUSH; redelivered adds kombu's flags.
func (c *Consumer) restore(ctx context.Context, tags []string, leftmost, redelivered bool) error {
	b := c.b
	dir, mark := "r", "1"
	if leftmost {
		dir = "l"
	}
	if !redelivered {
		mark = "0"
	}
	for len(tags) > 0 {
		chunk := tags[:min(len(tags), maxBatch)]
		tags = tags[len(chunk):]
		args := append([]string{b.cfg.keyPrefix, Sep, dir, mark}, chunk...)
		if err := runScript(ctx, b, "requeue", luaRestore, []string{b.unackedIndex, b.unacked}, args); err != nil {
			return err
		}
	}
	return nil
}

// runScript runs an idempotent script of the broker with retries.
func runScript(ctx context.Context, b *Broker, what string, s *script, keys, args []string) error {
	_, err := s.run(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, what, keys, args)
	return err
}

// SetPrefetch implements transport.Consumer.
func (c *Consumer) SetPrefetch(n int) error {
	if n < 0 {
		return fmt.Errorf("redis: negative prefetch %d", n)
	}
	c.mu.Lock()
	c.prefetch = n
	c.mu.Unlock()
	c.signalRoom()
	return nil
}

// Held returns the number of unacknowledged messages this consumer holds:
// handed out, or fetched and buffered.
func (c *Consumer) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// Close implements transport.Consumer: it stops the background work,
// sends pending acknowledgements, then puts every message it still holds
// back at the front of its queue (RPUSH, oldest first in line), as kombu
// does at warm shutdown: the ones handed out flagged redelivered, the ones
// only buffered as they were.
func (c *Consumer) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.cancelBg()
		c.fetchMu.Lock() // wait for a Fetch moving envelopes to slots
		c.fetchMu.Unlock()
		c.wg.Wait() // the fetcher's last script, if any, has been buffered
		if !c.b.closed.Load() {
			c.closeErr = c.flushAcks()
		}
		c.mu.Lock()
		var handed, buffered []string
		held := make([]slot, 0, c.held)
		for i, s := range c.slots {
			if s.m != nil {
				held = append(held, s)
				s.m.Tag = 0
				c.slots[i] = slot{}
			}
		}
		// Newest first, so that after the RPUSHes the oldest is in front:
		// every buffered envelope is newer than every handed-out one.
		for i := len(c.raw) - 1; i >= c.rawHead; i-- {
			buffered = append(buffered, c.raw[i].tag)
		}
		c.raw, c.rawHead, c.held = nil, 0, 0
		c.mu.Unlock()
		slices.SortFunc(held, func(a, b slot) int { return cmp.Compare(b.seq, a.seq) })
		for _, s := range held {
			handed = append(handed, s.tag)
		}
		if !c.b.closed.Load() {
			if len(buffered) > 0 {
				c.closeErr = errors.Join(c.closeErr, c.restore(bg, buffered, false, false))
			}
			if len(handed) > 0 {
				c.closeErr = errors.Join(c.closeErr, c.restore(bg, handed, false, true))
			}
			c.closeErr = errors.Join(c.closeErr, c.recoverLost())
		}
		c.b.mu.Lock()
		delete(c.b.consumers, c)
		c.b.mu.Unlock()
	})
	return c.closeErr
}

// watch waits, on its own connection, for list key to hold a message,
// with BLMOVE key key LEFT LEFT: it blocks until the list is non-empty and
// then moves its newest element onto itself, which leaves the list as it
// was (a message is never taken out of the list by a watcher, so a crash
// cannot lose it). Each arming (Fetch found nothing) wakes Fetch once.
func (c *Consumer) watch(w *watcher) {
	defer c.wg.Done()
	b := c.b
	key := w.key
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-w.arm:
		case <-w.stop:
			return
		case <-c.done:
			return
		}
		for c.waiting.Load() {
			err := b.client.Do(c.bg, b.client.B().Blmove().Source(key).Destination(key).Left().Left().Timeout(watchTimeout).Build()).Error()
			if c.closed.Load() || isClosed(w.stop) {
				return
			}
			if rueidis.IsRedisNil(err) {
				continue // timed out: still waiting?
			}
			if err != nil {
				b.log.Warn("redis: watcher lost its connection", "list", key, "err", err, "retry_in", backoff)
				if !sleep(c.done, backoff) {
					return
				}
				backoff = min(2*backoff, time.Second)
				c.notify() // let Fetch look again once the server is back
				continue
			}
			backoff = 10 * time.Millisecond
			c.notify()
			break
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Consumer) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sleep waits d or until done is closed (false).
func sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// intervals derive the heartbeat and restore periods from the visibility
// timeout: both well inside it.
func (c *Consumer) intervals() (refresh, restore time.Duration) {
	vt := c.b.cfg.visibilityTimeout
	refresh = min(max(vt/4, 25*time.Millisecond), 30*time.Second)
	restore = min(max(vt/4, 100*time.Millisecond), 30*time.Second)
	return refresh, restore
}

// heartbeat keeps the unacked_index score of every message this consumer
// holds fresh (ZADD XX now), so that no consumer, Go or Python, restores
// it at the visibility timeout while this consumer lives: ETA and
// countdown tasks held for hours and long acks_late tasks stay with the
// worker that has them.
func (c *Consumer) heartbeat() {
	defer c.wg.Done()
	refresh, _ := c.intervals()
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.done:
			return
		}
		if err := c.refresh(); err != nil && !c.closed.Load() {
			c.b.log.Warn("redis: could not refresh unacked messages", "err", err)
		}
	}
}

// refresh sets the score of every held message to now.
func (c *Consumer) refresh() error {
	c.mu.Lock()
	tags := make([]string, 0, c.held)
	for _, s := range c.slots {
		if s.m != nil {
			tags = append(tags, s.tag)
		}
	}
	for _, r := range c.raw[c.rawHead:] {
		tags = append(tags, r.tag)
	}
	c.mu.Unlock()
	if len(tags) == 0 {
		return nil
	}
	b := c.b
	score := time.Now()
	f := float64(score.UnixMicro()) / 1e6
	for len(tags) > 0 {
		chunk := tags[:min(len(tags), maxBatch)]
		tags = tags[len(chunk):]
		z := b.client.B().Zadd().Key(b.unackedIndex).Xx().ScoreMember()
		for _, t := range chunk {
			z = z.ScoreMember(f, t)
		}
		if err := b.client.Do(c.bg, z.Build()).Error(); err != nil {
			return err
		}
	}
	return nil
}

// restorer runs kombu's restore_visible now and then: messages whose
// score is older than the visibility timeout belong to consumers that
// died (or to Python workers holding them too long) and go back to their
// queues.
func (c *Consumer) restorer() {
	defer c.wg.Done()
	_, every := c.intervals()
	for {
		if _, err := c.b.RestoreVisible(c.bg); err != nil && !c.closed.Load() {
			c.b.log.Warn("redis: restoring unacknowledged messages failed", "err", err)
		}
		if !sleep(c.done, every) {
			return
		}
	}
}

// RestoreVisible is kombu's restore_visible: under the unacked_mutex, it
// puts back on their queues (front of the line, flagged redelivered) the
// unacknowledged messages whose unacked_index score is older than the
// visibility timeout, and returns how many. Consumers run it
// periodically; it is exported for tools and tests.
func (b *Broker) RestoreVisible(ctx context.Context) (int, error) {
	total := 0
	limit := b.cfg.unackedRestoreLimit
	batch := maxBatch
	if limit > 0 {
		batch = min(batch, limit)
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	for {
		ceil := unixScore(time.Now().Add(-b.cfg.visibilityTimeout))
		res := luaRestoreVisible.exec(ctx, b.client,
			[]string{b.unackedIndex, b.unacked, b.unackedMutex},
			[]string{b.cfg.keyPrefix, Sep, ceil, strconv.Itoa(batch), hex.EncodeToString(token),
				strconv.FormatInt(b.cfg.unackedMutexExpire.Milliseconds(), 10), skiplistSentinel})
		vals, err := res.AsIntSlice()
		if err != nil {
			return total, fmt.Errorf("redis: restore visible: %w", err)
		}
		if len(vals) != 3 || vals[0] < 0 {
			return total, nil // another restorer holds the mutex
		}
		total += int(vals[1])
		if vals[1] > 0 {
			b.log.Info("redis: restored unacknowledged messages", "count", vals[1])
		}
		if vals[2] > 0 {
			b.log.Error("redis: dropped unacked entries that do not decode", "count", vals[2])
		}
		if int(vals[0]) < batch || (limit > 0 && total >= limit) {
			return total, nil
		}
	}
}

// unixScore formats t as kombu's score: Unix seconds with microseconds.
func unixScore(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', 6, 64)
}

// deliveryTag finds the delivery tag of a raw envelope exactly as the
// fetch script does, so that both agree on the key of the unacked entry.
// "" means none (or empty).
//
// Fast path, for kombu's layout (and ours), where the tag is the last
// property and properties the last member: the envelope ends with `"}}`
// and its last 81 bytes contain `"delivery_tag": "`; the tag is what lies
// between the first such occurrence and the final `"}}`, if it holds no
// quote or backslash. Otherwise the first match of the Lua pattern
// '"delivery_tag"%s*:%s*"([^"\\]*)"'.
func deliveryTag(env string) string {
	const fast = `"delivery_tag": "`
	if strings.HasSuffix(env, `"}}`) {
		from := max(0, len(env)-81) // Lua: find(env, fast, max(1, #env - 80), true)
		if i := strings.Index(env[from:], fast); i >= 0 {
			start := from + i + len(fast)
			if start <= len(env)-3 {
				tag := env[start : len(env)-3]
				if tag != "" && !strings.ContainsAny(tag, `"\`) {
					return tag
				}
			}
		}
	}
	return deliveryTagPattern(env)
}

// deliveryTagPattern is Lua's string.match(env,
// '"delivery_tag"%s*:%s*"([^"\\]*)"').
func deliveryTagPattern(env string) string {
	const key = `"delivery_tag"`
	for from := 0; ; {
		i := strings.Index(env[from:], key)
		if i < 0 {
			return ""
		}
		j := skipLuaSpace(env, from+i+len(key))
		if j < len(env) && env[j] == ':' {
			j = skipLuaSpace(env, j+1)
			if j < len(env) && env[j] == '"' {
				k := j + 1
				for k < len(env) && env[k] != '"' && env[k] != '\\' {
					k++
				}
				if k < len(env) && env[k] == '"' {
					return env[j+1 : k]
				}
			}
		}
		from += i + 1
	}
}

// skipLuaSpace skips Lua's %s class (C isspace).
func skipLuaSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
