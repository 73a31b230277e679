// Package events sends and receives Celery events (celery-wire.md §7):
// the stream behind `celery events`, Flower and event exporters.
//
// A Dispatcher, attached to an engine.App, makes a celerity worker emit
// task-received, task-started, task-succeeded, task-failed, task-retried,
// task-revoked and task-rejected (when task events are on: Celery's -E)
// and worker-online, worker-heartbeat (every 2 s) and worker-offline
// (always), in Celery's format: the fields hostname, utcoffset (hours west
// of UTC), pid and clock (the Lamport clock shared with remote control),
// then the type's fields, timestamp and type; results, arguments and
// exceptions as Python repr strings; sw_ident "celerity". Task events are
// batched into task.multi JSON arrays as Celery's workers send them; on
// Redis they are PUBLISHed on "/<db>.celeryev/<routing key>", on RabbitMQ
// sent to the "celeryev" topic exchange (see control.Bus).
//
// # Never blocking the worker
//
// Hooks run on the worker's executors. They encode the event into a
// pooled buffer, append it to the batch being filled under a short lock
// and return; one publisher goroutine sends full batches at once and
// partial ones every FlushInterval. At most MaxPending batches wait: when
// the broker is slow or unreachable, further events are dropped and
// counted (Stats.Dropped), so task execution neither waits for the broker
// nor grows memory. A publish that fails drops its batch (counted too).
//
// # Receiving
//
// Receive subscribes to the event stream (a list or a single object per
// message, from Go or Python senders) and State keeps what a monitor
// shows: workers and whether they are alive (heard from within twice
// their heartbeat interval), task states, counts per type and task name,
// and recent failures.
//
// Dispatcher, State and the listener returned by Receive are safe for
// concurrent use.
package events
