package amqp

import (
	"context"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
)

// maxDelayTTL is the longest delay queue: 2^31-1 ms (24.8 days), the
// largest x-message-ttl that is a signed 32-bit integer. Longer waits take
// several trips.
const maxDelayTTL = (1<<31 - 1) * time.Millisecond

// parkOff is how long a consumer hands far-ETA tasks to the worker (as
// Celery does) after parking them failed.
const parkOff = time.Minute

// parkItem is a delivery whose ETA is too far away to hold it.
type parkItem struct {
	d     amqp091.Delivery
	queue string        // the queue it came from and returns to
	wait  time.Duration // until it is due
}

// parkable reports whether m is due further away than the ETA threshold
// (expiry counts as the due time when it comes first: the task will never
// run after it), and how far.
func (c *Consumer) parkable(m *codec.Message, now time.Time) (time.Duration, bool) {
	th := c.b.cfg.etaThreshold
	if th <= 0 || m.ETA.IsZero() || now.Before(c.parkOffUntil) {
		return 0, false
	}
	due := m.ETA
	if !m.Expires.IsZero() && m.Expires.Before(due) {
		due = m.Expires
	}
	wait := due.Sub(now)
	return wait, wait > th
}

// delayTTL picks the delay queue for a wait longer than the threshold th:
// the largest th/2 * 2^k that leaves at least th/2 to wait, so the
// message comes back due within th after O(log) trips at most.
func delayTTL(wait, th time.Duration) time.Duration {
	base := max(th/2, time.Millisecond)
	ttl := base
	for ttl*2 <= wait-base && ttl*2 <= maxDelayTTL {
		ttl *= 2
	}
	return min(ttl, maxDelayTTL)
}

// park republishes c.parked to their delay queues with confirms and, once
// RabbitMQ has them, acknowledges the originals. If that fails the
// originals are requeued and, for a while, far-ETA tasks are handed to the
// worker instead.
func (c *Consumer) park(s *consSession) {
	th := c.b.cfg.etaThreshold
	items := make([]rawPub, len(c.parked))
	for i := range c.parked {
		p := &c.parked[i]
		q := delayQueue(delayTTL(p.wait, th))
		d := &p.d
		items[i] = rawPub{
			exchange:  q.Exchange.Name,
			key:       p.queue, // dead-lettered with this key to the default exchange
			mandatory: true,
			declare:   &q,
			pub: amqp091.Publishing{
				Headers:         d.Headers,
				ContentType:     d.ContentType,
				ContentEncoding: d.ContentEncoding,
				DeliveryMode:    d.DeliveryMode,
				Priority:        d.Priority,
				CorrelationId:   d.CorrelationId,
				ReplyTo:         d.ReplyTo,
				MessageId:       d.MessageId,
				Timestamp:       d.Timestamp,
				Type:            d.Type,
				UserId:          d.UserId,
				AppId:           d.AppId,
				Body:            d.Body,
			},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.b.cfg.dialTimeout+30*time.Second)
	err := c.b.pub.send(ctx, &rawSource{items: items})
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.gen != c.gen {
		return // the originals were requeued with their connection
	}
	if err != nil {
		c.b.cfg.log.Warn("amqp: cannot park far-ETA tasks in delay queues; requeueing them and holding such tasks in memory for a while",
			"n", len(c.parked), "err", err, "for", parkOff)
		c.parkOffUntil = time.Now().Add(parkOff)
		for i := range c.parked {
			tag := c.parked[i].d.DeliveryTag
			if s.ch.Reject(tag, true) == nil {
				c.acks.settle(tag, false)
			}
		}
	} else {
		c.b.cfg.log.Debug("amqp: parked far-ETA tasks in delay queues", "n", len(c.parked))
		for i := range c.parked {
			c.acks.settle(c.parked[i].d.DeliveryTag, true)
		}
	}
	clear(c.parked)
	c.parked = c.parked[:0]
	c.maybeFlushLocked()
}
