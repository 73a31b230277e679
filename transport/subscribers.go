package transport

import (
	"context"
	"errors"
	"sync"
)

// ErrSubscriptionClosed is returned by Next once the backend closed.
var ErrSubscriptionClosed = errors.New("transport: subscription closed")

// Subscribers is a registry of in-process subscriptions by task id, for
// backends that deliver records to waiters themselves (memory, rpc://). A
// subscriber that falls behind keeps only the latest records: a later state
// supersedes an earlier one. The zero value is ready; it is safe for
// concurrent use.
type Subscribers struct {
	mu     sync.Mutex
	subs   map[string][]*subscriber
	closed bool
}

type subscriber struct {
	set *Subscribers
	id  string
	ch  chan []byte
}

// Subscribe returns a subscription to the records published for taskID
// from now on.
func (s *Subscribers) Subscribe(taskID string) (Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSubscriptionClosed
	}
	if s.subs == nil {
		s.subs = make(map[string][]*subscriber)
	}
	sub := &subscriber{set: s, id: taskID, ch: make(chan []byte, 8)}
	s.subs[taskID] = append(s.subs[taskID], sub)
	return sub, nil
}

// Publish hands rec to the subscribers of taskID. rec is shared with them:
// the caller must not modify it afterwards.
func (s *Subscribers) Publish(taskID string, rec []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs[taskID] {
		sub.deliver(rec)
	}
}

// Close ends every subscription; Subscribe fails afterwards.
func (s *Subscribers) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, list := range s.subs {
		for _, sub := range list {
			close(sub.ch)
		}
	}
	s.subs = nil
}

// deliver queues rec, dropping the oldest queued record when the
// subscriber is far behind. set.mu is held.
func (sub *subscriber) deliver(rec []byte) {
	for {
		select {
		case sub.ch <- rec:
			return
		default:
			select {
			case <-sub.ch:
			default:
			}
		}
	}
}

func (sub *subscriber) Next(ctx context.Context, dst []byte) ([]byte, error) {
	select {
	case rec, ok := <-sub.ch:
		if !ok {
			return dst, ErrSubscriptionClosed
		}
		return append(dst, rec...), nil
	case <-ctx.Done():
		return dst, ctx.Err()
	}
}

func (sub *subscriber) Close() error {
	s := sub.set
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	list := s.subs[sub.id]
	for i, x := range list {
		if x == sub {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.subs, sub.id)
	} else {
		s.subs[sub.id] = list
	}
	return nil
}
