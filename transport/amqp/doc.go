// Package amqp is celerity's RabbitMQ transport (github.com/rabbitmq/amqp091-go)
// and Celery's rpc:// result backend. Python Celery workers and clients
// share a vhost with it: it declares what Celery declares, writes the
// messages Celery writes and reads the ones Celery sends
// (celery-wire.md §4).
//
// # Topology
//
// A task queue Q is declared as kombu declares Celery's queues: a durable
// direct exchange Q, a durable queue Q (with x-max-priority only when
// WithMaxPriority is given, Celery's task_queue_max_priority) and the
// binding Q -> Q with key Q. RabbitMQ refuses (406 PRECONDITION_FAILED) to
// redeclare an entity with other flags or arguments, so these must match
// Python's byte for byte; TaskQueue, ControlQueue, ReplyQueue, EventQueue
// and RPCQueue build exactly kombu's declarations (integers as 32-bit
// 'I' values like py-amqp) for the task, remote-control (celery.pidbox,
// reply.celery.pidbox), event (celeryev) and rpc queues. Publish declares
// a task's queue once per connection before its first message; Consume
// declares its queues.
//
// # Publishing
//
// Tasks go to the default exchange with the queue name as routing key, as
// Celery sends them, persistent (delivery_mode 2), with the AMQP
// expiration taken from expires, priority, correlation_id = task id,
// reply_to = the client's oid, and the Celery headers typed as py-amqp
// types them (codec.AMQPHeaders: 32-bit ints, void for null, arrays for
// timelimit; nested tables as amqp091.Table). The publishing channel is
// in confirm mode and every message is mandatory: Publish returns once
// RabbitMQ confirmed each message, and reports a nack (ErrNacked) or an
// unroutable message (ErrReturned) in a *PublishError. Publishes are
// pipelined: a call sends all its messages back to back (in chunks of
// WithMaxInFlight) before it collects their confirmations, which RabbitMQ
// sends in batches (multiple=true), and concurrent calls share the
// channel, so many messages are in flight at once. A basic.return, which
// RabbitMQ sends before the confirmation of the same message, is matched
// to it by correlation id. If the connection drops, Publish redials with
// backoff and resends the messages whose confirmation was lost: delivery
// is at least once.
//
// # Consuming and acknowledgements
//
// Each Consumer has its own connection and channel with basic.qos
// prefetch_count = the prefetch given to Consume (global=true, as Celery
// sets it on RabbitMQ); SetPrefetch issues a new basic.qos. Fetch takes
// deliveries round-robin from its queues. Acks are coalesced: settled
// delivery tags wait (at most WithAckBatch's n, fewer than half the
// prefetch window, and never longer than its delay) and go out as one
// basic.ack with multiple=true covering the run of settled tags above the
// last acknowledged one. A multiple ack is never sent past a delivery that
// is not finished or not even fetched yet; tags settled above such a gap
// wait a little for it to close, then are acknowledged one by one.
// Reject sends basic.reject at once (requeue or not); the Redelivered flag
// of a delivery is on codec.Message.Redelivered. Close sends the pending
// acks, closes the channel, and RabbitMQ requeues every unacknowledged
// delivery. A delivery that is not a Celery task message (codec.DecodeAMQP
// fails) is rejected without requeue and logged; Fetch goes on.
//
// # ETA tasks and consumer_timeout
//
// RabbitMQ closes a channel that keeps a delivery unacknowledged longer
// than consumer_timeout (30 minutes by default), and Celery's workers hold
// ETA and countdown tasks unacknowledged until they are due. So a
// Consumer never hands the worker a task due further away than the ETA
// threshold (WithETAThreshold, default 10 minutes; its expiry counts when
// it comes first). It parks it instead: it republishes the delivery,
// unchanged but for the AMQP expiration, with confirms to a delay
// exchange "celerity.delay.<ms>" (durable, fanout) whose durable queue of
// the same name has x-message-ttl <ms> and x-dead-letter-exchange "",
// using the task's queue name as routing key, then acks the original.
// When the TTL runs out RabbitMQ dead-letters the message through the
// default exchange with that routing key, i.e. back to the task's queue,
// where a consumer looks at it again (RabbitMQ's x-death headers are
// dropped on receipt). Each delay queue holds messages of one TTL only,
// so they expire in order; the TTLs are threshold/2 x 2^k and the
// largest that leaves at least threshold/2 to wait is chosen, so a task
// comes back due within the threshold after a few trips (one per halving;
// at most 24.8 days per trip). The worker then holds it for less than the
// threshold, well under consumer_timeout. No engine hook is needed. Python
// workers on the same queue are unaffected: they receive parked messages
// back unchanged and hold them as they always do. If parking fails the
// deliveries are requeued and, for a minute, far-ETA tasks are handed to
// the worker as Celery would.
//
// # Connection loss
//
// Fetch reconnects a lost consumer connection itself, with exponential
// backoff (WithReconnectBackoff), redeclares the queues, sets the qos and
// consumes again; RabbitMQ redelivers what the lost channel had not
// acknowledged, flagged redelivered. Acks and rejects of deliveries of a
// lost connection are dropped (those deliveries come back). Nothing is
// lost; a task whose ack was lost runs twice (at-least-once, as Celery).
// The publishing connection and the rpc:// reply consumer reconnect
// likewise. URLs are Celery's (amqp://user:pass@host:port/vhost,
// amqps:// with WithTLS or the URI's TLS parameters, pyamqp://); the
// heartbeat is WithHeartbeat or the heartbeat query parameter.
//
// # The rpc:// result backend
//
// RPCBackend sends a task's states to the reply_to queue of the client
// that published it, with correlation_id = task id, transient, and keeps
// the latest record per task id of those its own queue (named by the
// broker's OID, not durable, auto-delete, x-expires = result_expires)
// receives, as Celery's RPCBackend does. Only the sending client sees the
// results; chords and group saving are refused (ErrChordsUnsupported,
// ErrGroupsUnsupported).
//
// Broker, Consumer and RPCBackend are safe for concurrent use (a
// Consumer's Fetch has one caller at a time). Publish takes ownership of
// the messages it is given; Fetch hands ownership of the messages it
// returns to the caller, who releases them with codec.ReleaseMessage
// after acknowledging or rejecting them; their byte slices are views of
// the delivery and stay valid until then.
package amqp
