package amqp

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestBatchNotDoneWhileSending guards a lost-message bug: a confirmation
// that arrives while later items of the same round are still being
// published must not end the round, or those items would be neither
// waited for nor resent if their connection dies.
func TestBatchNotDoneWhileSending(t *testing.T) {
	t.Parallel()
	b := newBatch(&rawSource{items: make([]rawPub, 2)})
	b.sending = true
	b.status[0], b.waiting = stInFlight, 1
	b.resolve(0, 0, stAcked, "") // confirmed before item 1 went out
	select {
	case <-b.done:
		t.Fatal("the round ended while an item was still to be sent")
	default:
	}
	b.status[1], b.waiting = stInFlight, 1
	b.sending = false
	b.resolve(1, 0, stLost, "")
	select {
	case <-b.done:
	default:
		t.Fatal("the round did not end after its last confirmation")
	}
	if b.status[1] != stLost {
		t.Fatal("item 1 not marked for resending")
	}
}

// TestPublishErrorText: a *PublishError names the messages and the reason.
func TestPublishErrorText(t *testing.T) {
	t.Parallel()
	b := newBatch(&rawSource{items: []rawPub{
		{pub: amqp091.Publishing{CorrelationId: "a"}},
		{pub: amqp091.Publishing{CorrelationId: "b"}},
		{pub: amqp091.Publishing{CorrelationId: "c"}},
	}})
	b.status = []uint8{stAcked, stNacked, stReturned}
	b.reason = "312 NO_ROUTE"
	want := "amqp: publish: 1 message(s) nacked by the broker (b); 1 message(s) returned as unroutable (c): 312 NO_ROUTE"
	if err := b.err(); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}
