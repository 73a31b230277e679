package amqp

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// ackTracker turns the acknowledgements and rejections of one channel's
// deliveries, in whatever order the worker finishes them, into as few
// basic.ack frames as is safe. RabbitMQ numbers a channel's deliveries
// 1, 2, 3...; an ack with multiple=true settles every outstanding tag up
// to its own, so it may only be sent for a tag below which every delivery
// is settled, including deliveries the worker has not fetched yet.
//
// Settled tags wait in waiting. A flush sorts them, moves the floor (the
// highest tag below which everything is settled) up as far as they reach
// and sends one multiple ack for the run. Tags above the first unsettled
// tag (a long task, a held ETA task, a delivery not yet fetched) wait for
// the gap to close, and are acknowledged one by one only when they have
// waited too long or are too many (they occupy the prefetch window).
//
// An ackTracker is not safe for concurrent use (Consumer.mu guards it).
type ackTracker struct {
	floor   uint64     // every tag <= floor is settled (acked, or in this flush's multiple ack)
	above   []tagRange // tags > floor+1 settled at the broker already; sorted, disjoint, not adjacent
	waiting []settled  // settled by the worker, not yet acknowledged on the wire
	since   time.Time  // when tags first waited above a gap; zero if none do
}

// settled is one delivery tag the worker is done with: acked, or rejected
// (the basic.reject frame already sent, so it needs no ack).
type settled struct {
	tag uint64
	ack bool
}

type tagRange struct{ lo, hi uint64 }

// settle records tag as done; ack is false for a rejected delivery.
func (t *ackTracker) settle(tag uint64, ack bool) {
	t.waiting = append(t.waiting, settled{tag, ack})
}

// isSettled reports whether tag was settled before (acking or rejecting
// it again would make RabbitMQ close the channel).
func (t *ackTracker) isSettled(tag uint64) bool {
	if tag <= t.floor || t.isAbove(tag) {
		return true
	}
	for _, w := range t.waiting {
		if w.tag == tag {
			return true
		}
	}
	return false
}

// pending is the number of settled tags not yet acknowledged.
func (t *ackTracker) pending() int { return len(t.waiting) }

// reset forgets everything (a new channel numbers from 1 again).
func (t *ackTracker) reset() {
	t.floor, t.above, t.waiting, t.since = 0, t.above[:0], t.waiting[:0], time.Time{}
}

// flush sends the acknowledgements due through send. Tags above a gap are
// sent individually only when force is set, when they first waited at
// least maxWait before now, or when there are at least pressure of them.
// It returns the first error of send; the tracker's state moves on
// regardless (a failed send means the channel is gone and the broker
// requeues everything unacknowledged).
func (t *ackTracker) flush(now time.Time, force bool, maxWait time.Duration, pressure int, send func(tag uint64, multiple bool) error) error {
	if len(t.waiting) == 0 {
		return nil
	}
	// Sorted by tag; for a tag settled twice (a worker that acks what it
	// rejected) the rejection first, so that no ack is sent for it.
	slices.SortFunc(t.waiting, func(a, b settled) int {
		if c := cmp.Compare(a.tag, b.tag); c != 0 {
			return c
		}
		switch {
		case a.ack == b.ack:
			return 0
		case !a.ack:
			return -1
		}
		return 1
	})
	var multi uint64
	i := 0
	for ; i < len(t.waiting); i++ {
		w := t.waiting[i]
		if w.tag <= t.floor {
			continue // a duplicate
		}
		if w.tag != t.floor+1 {
			break
		}
		t.floor = w.tag
		if w.ack {
			multi = w.tag
		}
		for len(t.above) > 0 && t.above[0].lo == t.floor+1 {
			t.floor = t.above[0].hi
			t.above = t.above[1:]
		}
	}
	var err error
	if multi != 0 {
		err = send(multi, true)
	}
	rest := t.waiting[i:]
	if len(rest) == 0 {
		t.waiting, t.since = t.waiting[:0], time.Time{}
		return err
	}
	if !force && len(rest) < pressure && (t.since.IsZero() || now.Sub(t.since) < maxWait) {
		if t.since.IsZero() {
			t.since = now
		}
		t.waiting = t.waiting[:copy(t.waiting, rest)]
		return err
	}
	var prev uint64
	for _, w := range rest {
		if w.tag == prev || t.isAbove(w.tag) {
			continue // a duplicate
		}
		prev = w.tag
		if w.ack {
			if e := send(w.tag, false); e != nil && err == nil {
				err = e
			}
		}
		t.addAbove(w.tag)
	}
	t.waiting, t.since = t.waiting[:0], time.Time{}
	return err
}

// isAbove reports whether tag is in t.above.
func (t *ackTracker) isAbove(tag uint64) bool {
	i := sort.Search(len(t.above), func(i int) bool { return t.above[i].hi >= tag })
	return i < len(t.above) && t.above[i].lo <= tag
}

// addAbove inserts tag (> floor+1, not present) into t.above, merging
// adjacent ranges.
func (t *ackTracker) addAbove(tag uint64) {
	i := sort.Search(len(t.above), func(i int) bool { return t.above[i].lo > tag })
	// t.above[i-1].lo <= tag < t.above[i].lo
	joinLeft := i > 0 && t.above[i-1].hi+1 == tag
	joinRight := i < len(t.above) && t.above[i].lo == tag+1
	switch {
	case joinLeft && joinRight:
		t.above[i-1].hi = t.above[i].hi
		t.above = slices.Delete(t.above, i, i+1)
	case joinLeft:
		t.above[i-1].hi = tag
	case joinRight:
		t.above[i].lo = tag
	default:
		t.above = slices.Insert(t.above, i, tagRange{tag, tag})
	}
}
