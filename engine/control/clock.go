package control

import "sync/atomic"

// Clock is a Lamport clock, Celery's app.clock: senders Forward it and put
// the value in the messages they send (the "clock" header of commands and
// replies, the "clock" field of events); receivers Adjust it with the
// values they see. Remote control and events of one worker share one
// Clock. The zero Clock is ready; it is safe for concurrent use.
type Clock struct{ v atomic.Int64 }

// Forward advances the clock and returns the new value.
func (c *Clock) Forward() int64 { return c.v.Add(1) }

// Adjust merges a value received from elsewhere: the clock becomes
// max(own, other) + 1, which it returns.
func (c *Clock) Adjust(other int64) int64 {
	for {
		cur := c.v.Load()
		next := max(cur, other) + 1
		if c.v.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// Value returns the current value without advancing it.
func (c *Clock) Value() int64 { return c.v.Load() }
