package redis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// hub multiplexes the backend's result subscriptions over one dedicated
// pub/sub connection. One goroutine (run) owns the connection: it sends
// SUBSCRIBE and UNSUBSCRIBE for the channels whose wanted state changed
// (reference counted per channel, pipelined), reconnects with backoff
// when the connection is lost, resubscribes, and then re-reads every
// subscribed key so that records published during the outage are not
// missed.
//
// Lock order: hub.mu only; never held while talking to Redis.
type hub struct {
	b      *Backend
	mu     sync.Mutex
	chans  map[string]*chanState
	dirty  map[string]struct{} // channels whose wanted state may differ from the server's
	closed bool

	kick chan struct{}
	done chan struct{}
	// Scratch of sync (run's goroutine only).
	subsBuf, unsubsBuf []string
	cmdsBuf            rueidis.Commands
	ctx                context.Context
	cancel             context.CancelFunc
	wg                 sync.WaitGroup
}

type chanState struct {
	subs     []*subscription
	have     bool // subscribed on the server (as far as the hub knows)
	inflight bool // an UNSUBSCRIBE is on its way
	waiters  []chan error
}

func newHub(b *Backend) *hub {
	h := &hub{
		b: b, chans: make(map[string]*chanState), dirty: make(map[string]struct{}),
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.wg.Add(1)
	go h.run()
	return h
}

func (h *hub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// subscribe registers a subscription to channel and waits until the
// server has confirmed it.
func (h *hub) subscribe(ctx context.Context, channel string) (*subscription, error) {
	s := &subscription{h: h, channel: channel, recs: make(chan string, 8)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	cs := h.chans[channel]
	if cs == nil {
		cs = &chanState{}
		h.chans[channel] = cs
	}
	cs.subs = append(cs.subs, s)
	if cs.have && !cs.inflight {
		h.mu.Unlock()
		return s, nil
	}
	w := make(chan error, 1)
	cs.waiters = append(cs.waiters, w)
	h.dirty[channel] = struct{}{}
	h.mu.Unlock()
	h.poke()
	select {
	case err := <-w:
		if err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	case <-h.done:
		return nil, ErrClosed
	}
}

func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for _, cs := range h.chans {
		for _, s := range cs.subs {
			s.once.Do(func() { close(s.recs) })
		}
	}
	h.mu.Unlock()
	close(h.done)
	h.cancel()
	h.wg.Wait()
}

func (h *hub) run() {
	defer h.wg.Done()
	backoff := 10 * time.Millisecond
	for reconnect := false; ; reconnect = true {
		dc, release := h.b.client.Dedicate()
		lost := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: h.onMessage})
		h.mu.Lock()
		for k, cs := range h.chans {
			cs.have, cs.inflight = false, false
			h.dirty[k] = struct{}{}
		}
		h.mu.Unlock()
		ok, err := h.serve(dc, lost, reconnect)
		release()
		if !ok {
			return
		}
		h.b.log.Warn("redis: result subscription connection lost; reconnecting", "err", err, "retry_in", backoff)
		if !sleep(h.done, backoff) {
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// serve keeps the connection's subscriptions in sync until the
// connection is lost (ok = true, reconnect) or the hub closes (ok = false).
func (h *hub) serve(dc rueidis.DedicatedClient, lost <-chan error, reread bool) (ok bool, err error) {
	for {
		if err := h.sync(dc); err != nil {
			select {
			case <-h.done:
				return false, nil
			default:
			}
			return true, err
		}
		if reread {
			reread = false
			h.reread()
		}
		select {
		case <-h.kick:
		case err := <-lost:
			if err == nil {
				err = errors.New("connection closed")
			}
			return true, err
		case <-h.done:
			return false, nil
		}
	}
}

// sync sends the (UN)SUBSCRIBE commands that bring the server in line
// with the wanted channels.
func (h *hub) sync(dc rueidis.DedicatedClient) error {
	h.mu.Lock()
	subs, unsubs := h.subsBuf[:0], h.unsubsBuf[:0]
	defer func() { h.subsBuf, h.unsubsBuf = subs, unsubs }()
	for k := range h.dirty {
		delete(h.dirty, k)
		cs := h.chans[k]
		if cs == nil || cs.inflight {
			continue
		}
		want := len(cs.subs) > 0
		switch {
		case want && !cs.have:
			subs = append(subs, k)
		case !want && cs.have:
			cs.inflight = true
			unsubs = append(unsubs, k)
		case !want:
			delete(h.chans, k)
		default:
			cs.notify(nil)
		}
	}
	h.mu.Unlock()
	if len(subs)+len(unsubs) == 0 {
		return nil
	}
	cmds := h.cmdsBuf[:0]
	for _, k := range subs {
		cmds = append(cmds, dc.B().Subscribe().Channel(k).Build())
	}
	for _, k := range unsubs {
		cmds = append(cmds, dc.B().Unsubscribe().Channel(k).Build())
	}
	res := dc.DoMulti(h.ctx, cmds...)
	// rueidis keeps the slice it was given while it may still write it
	// (after a cancellation or a connection error): reuse it only when
	// every command was answered.
	h.cmdsBuf = nil
	if allOK(res) {
		clear(cmds)
		h.cmdsBuf = cmds[:0]
	}
	var first error
	h.mu.Lock()
	for i, k := range subs {
		cs := h.chans[k]
		if cs == nil {
			continue
		}
		if err := res[i].Error(); err != nil {
			first = cmpErr(first, err)
			h.dirty[k] = struct{}{}
			continue
		}
		cs.have = true
		cs.notify(nil)
		if len(cs.subs) == 0 {
			h.dirty[k] = struct{}{}
		}
	}
	for i, k := range unsubs {
		cs := h.chans[k]
		if cs == nil {
			continue
		}
		cs.inflight = false
		if err := res[len(subs)+i].Error(); err != nil {
			first = cmpErr(first, err)
			h.dirty[k] = struct{}{}
			continue
		}
		cs.have = false
		if len(cs.subs) > 0 {
			h.dirty[k] = struct{}{}
		} else {
			delete(h.chans, k)
		}
	}
	again := len(h.dirty) > 0
	h.mu.Unlock()
	if first == nil && again {
		h.poke()
	}
	return first
}

// allOK reports whether every result is a reply without error.
func allOK(res []rueidis.RedisResult) bool {
	for _, r := range res {
		if r.Error() != nil {
			return false
		}
	}
	return true
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// notify wakes the subscribers waiting for the confirmation.
func (cs *chanState) notify(err error) {
	for _, w := range cs.waiters {
		w <- err
	}
	cs.waiters = nil
}

// reread delivers the current record of every subscribed channel (whose
// name is the record's key) after a reconnection.
func (h *hub) reread() {
	h.mu.Lock()
	keys := make([]string, 0, len(h.chans))
	for k, cs := range h.chans {
		if len(cs.subs) > 0 {
			keys = append(keys, k)
		}
	}
	h.mu.Unlock()
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 512)]
		keys = keys[len(chunk):]
		vals, err := h.b.client.Do(h.ctx, h.b.client.B().Mget().Key(chunk...).Build()).ToArray()
		if err != nil {
			h.b.log.Warn("redis: re-reading subscribed results after reconnect", "err", err)
			return
		}
		for i := range vals {
			if v, err := vals[i].ToString(); err == nil {
				h.onMessage(rueidis.PubSubMessage{Channel: chunk[i], Message: v})
			}
		}
	}
}

// onMessage runs in rueidis's reader goroutine: it only hands the record
// to the subscribers, never blocking.
func (h *hub) onMessage(m rueidis.PubSubMessage) {
	h.mu.Lock()
	if cs := h.chans[m.Channel]; cs != nil {
		for _, s := range cs.subs {
			s.deliver(m.Message)
		}
	}
	h.mu.Unlock()
}

// subscription implements transport.Subscription.
type subscription struct {
	h       *hub
	channel string
	recs    chan string // closed by Close or the hub's close, under hub.mu
	once    sync.Once
}

// deliver queues rec, dropping the oldest queued record when the
// subscriber is far behind (a later state supersedes an earlier one).
// hub.mu is held.
func (s *subscription) deliver(rec string) {
	for {
		select {
		case s.recs <- rec:
			return
		default:
			select {
			case <-s.recs:
			default:
			}
		}
	}
}

// Next implements transport.Subscription.
func (s *subscription) Next(ctx context.Context, dst []byte) ([]byte, error) {
	select {
	case r, ok := <-s.recs:
		if !ok {
			return dst, ErrClosed
		}
		return append(dst, r...), nil
	case <-ctx.Done():
		return dst, ctx.Err()
	}
}

// Close implements transport.Subscription.
func (s *subscription) Close() error {
	h := s.h
	h.mu.Lock()
	if cs := h.chans[s.channel]; cs != nil {
		if i := slices.Index(cs.subs, s); i >= 0 {
			cs.subs = slices.Delete(cs.subs, i, i+1)
		}
		if len(cs.subs) == 0 && !h.closed {
			h.dirty[s.channel] = struct{}{}
		}
	}
	s.once.Do(func() {
		close(s.recs)
		for range s.recs { // drop what was not read
		}
	})
	h.mu.Unlock()
	h.poke()
	return nil
}
