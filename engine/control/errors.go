package control

import "errors"

var (
	// ErrBadMessage: a message on the bus could not be decoded (bad
	// envelope, base64, content type or body).
	ErrBadMessage = errors.New("control: bad message")
	// ErrClosed: the bus, server or client was closed.
	ErrClosed = errors.New("control: closed")
	// ErrUnsupported: the broker offers no broadcast (remote control and
	// events need Redis or RabbitMQ).
	ErrUnsupported = errors.New("control: broker does not support remote control")
	// ErrNoReply: no node replied within the timeout.
	ErrNoReply = errors.New("control: no nodes replied within time constraint")
	// ErrUnknownCommand: the worker has no command of that name.
	ErrUnknownCommand = errors.New("control: unknown command")
)
