package amqp

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Operations wrap them with context; test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Broker, Consumer or
	// RPCBackend.
	ErrClosed = errors.New("amqp: closed")
	// ErrBadURL means the broker URL is not an amqp://, amqps:// or
	// pyamqp:// URL this package can use.
	ErrBadURL = errors.New("amqp: bad broker URL")
	// ErrNacked means RabbitMQ answered a published message with basic.nack
	// (it could not take responsibility for it, e.g. an internal error or a
	// queue length limit with reject-publish).
	ErrNacked = errors.New("amqp: message nacked by the broker")
	// ErrReturned means RabbitMQ returned a mandatory message: no queue is
	// bound to its exchange and routing key.
	ErrReturned = errors.New("amqp: message returned as unroutable")
	// ErrUnavailable means the broker could not be reached (or the
	// connection kept failing) within the retries allowed.
	ErrUnavailable = errors.New("amqp: broker unavailable")
	// ErrChordsUnsupported is what the rpc:// backend answers to a chord,
	// as Celery's RPCBackend.ensure_chords_allowed raises
	// NotImplementedError: the results only reach the client that sent the
	// tasks, so no worker can count a chord's header.
	ErrChordsUnsupported = errors.New(`amqp: the "rpc" result backend does not support chords ` +
		`(a group chained with a task is a chord too); use a backend that does, such as Redis`)
	// ErrGroupsUnsupported is what the rpc:// backend answers to saving or
	// restoring a group result, as Celery's RPCBackend.save_group does.
	ErrGroupsUnsupported = errors.New(`amqp: the "rpc" result backend cannot save or restore group results`)
)

// PublishError reports the messages of one Publish call that RabbitMQ
// nacked or returned. It unwraps to ErrNacked and/or ErrReturned.
type PublishError struct {
	Nacked   []string // task ids (correlation ids) answered with basic.nack
	Returned []string // task ids returned as unroutable
	Reason   string   // the reply text of the first return, e.g. "NO_ROUTE"
}

func (e *PublishError) Error() string {
	var b strings.Builder
	b.WriteString("amqp: publish:")
	if len(e.Nacked) > 0 {
		fmt.Fprintf(&b, " %d message(s) nacked by the broker (%s)", len(e.Nacked), idList(e.Nacked))
	}
	if len(e.Returned) > 0 {
		if len(e.Nacked) > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %d message(s) returned as unroutable (%s): %s", len(e.Returned), idList(e.Returned), e.Reason)
	}
	return b.String()
}

// Unwrap exposes ErrNacked and ErrReturned to errors.Is.
func (e *PublishError) Unwrap() []error {
	var errs []error
	if len(e.Nacked) > 0 {
		errs = append(errs, ErrNacked)
	}
	if len(e.Returned) > 0 {
		errs = append(errs, ErrReturned)
	}
	return errs
}

func idList(ids []string) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:show], ", ") + fmt.Sprintf(", ... %d more", len(ids)-show)
}
