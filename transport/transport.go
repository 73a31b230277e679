package transport

import (
	"context"

	"github.com/celerity-go/celerity/codec"
)

// Broker is what the engine needs from a message broker. Implementations
// (transport/memory, transport/redis, transport/amqp) return concrete types;
// transport/transporttest checks that they behave alike.
//
// Implementations must be safe for concurrent use.
type Broker interface {
	// Publish sends msgs, in order, to the queues their Exchange and
	// RoutingKey name (exchange "" routes to the queue named by the routing
	// key, as Celery publishes tasks). Publish takes ownership of every
	// message, whatever it returns: the broker releases each with
	// codec.ReleaseMessage, or hands it to a consumer, when done with it.
	Publish(ctx context.Context, msgs ...*codec.Message) error
	// Consume starts a consumer on queues holding at most prefetch
	// unacknowledged messages (0 = unlimited).
	Consume(ctx context.Context, queues []string, prefetch int) (Consumer, error)
	// Close releases the broker's connections.
	Close() error
}

// Consumer receives messages from a Broker. Its methods are safe for
// concurrent use with each other, except that Fetch has one caller at a time.
type Consumer interface {
	// Fetch waits until at least one message is available (or ctx is done)
	// and fills dst[:n] with at most len(dst) messages, never taking the
	// consumer over its prefetch bound.
	//
	// The caller owns each fetched message: after acknowledging or
	// rejecting it (or closing the consumer) it releases it with
	// codec.ReleaseMessage. Ack, Reject and Close never take a message
	// from the caller; a requeue puts a copy back on the queue.
	Fetch(ctx context.Context, dst []*codec.Message) (n int, err error)
	// Ack acknowledges msgs: the broker forgets them.
	Ack(msgs ...*codec.Message) error
	// Reject gives msgs back to the broker: requeued (redelivered later,
	// flagged Redelivered) or dropped.
	Reject(requeue bool, msgs ...*codec.Message) error
	// SetPrefetch changes the prefetch bound. The worker raises it by one
	// for each ETA or rate-limited task it holds and lowers it again when
	// the task is handed to the pool, as Celery does with basic.qos.
	SetPrefetch(n int) error
	// AddQueue starts consuming from queue as well (Celery's add_consumer
	// control command); a queue already consumed is left as it is. A Fetch
	// waiting meanwhile sees the new queue's messages.
	AddQueue(ctx context.Context, queue string) error
	// CancelQueue stops consuming from queue (cancel_consumer): once it
	// returns, no more messages are taken from it. Messages taken before
	// (fetched, or already on their way to this consumer) are still
	// returned by Fetch and stay the caller's to acknowledge or reject.
	// Cancelling a queue not consumed does nothing; with every queue
	// cancelled, Fetch waits for an AddQueue.
	CancelQueue(ctx context.Context, queue string) error
	// Close stops the consumer; every message fetched and not yet
	// acknowledged or rejected is requeued.
	Close() error
}

// OnePublisher is implemented by brokers that can take a single message
// without a slice (the memory transport). A variadic argument to an
// interface method escapes to the heap, so without it the engine hands
// every single send over in a pooled one-element array, a sync.Pool round
// trip per task (BenchmarkEngineMemoryNoop in engine, c=2: x0.95 ns/task
// with PublishOne, on one processor and on two). PublishOne(ctx, m) must do
// what Publish(ctx, m) does; transporttest checks it.
type OnePublisher interface {
	PublishOne(ctx context.Context, m *codec.Message) error
}

// Poller is implemented by consumers that can take messages without
// waiting (the memory transport). A worker's executors poll when they run
// out of work, so a message already in the broker reaches an idle executor
// without a hop through the fetch loop (which waits with Wait instead of
// Fetch). Poll and Wait are safe for concurrent use with each other and
// with the Consumer's methods.
type Poller interface {
	// Poll is Fetch without the wait: n is 0 when no message is ready or
	// the prefetch bound leaves no room.
	Poll(dst []*codec.Message) (n int, err error)
	// Wait returns when a Poll may find a message (the prefetch bound
	// leaves room and a queue has one), or when ctx is done. A Poll after
	// it may still find nothing: another caller may have taken it.
	Wait(ctx context.Context) error
}

// ChordBackend is implemented by result backends that count chord parts
// as Celery 5.2 does natively (celery-wire.md §5.6): the engine runs
// chords only on them (not on AMQP's rpc:// backend, as Celery refuses
// chords there). transporttest checks the counting.
type ChordBackend interface {
	// SetChordSize records how many header tasks groupID's chord has.
	SetChordSize(ctx context.Context, groupID string, size int) error
	// ChordPartDone records that the header task at index (its
	// group_index, or NoGroupIndex) finished with part, its encoded
	// [1, id, state, result] entry. done is true for the part that
	// completes the chord, once, with every part ordered by index.
	ChordPartDone(ctx context.Context, groupID string, index int, part []byte) (done bool, parts [][]byte, err error)
	// ChordCleanup forgets groupID's counts once its body is sent.
	ChordCleanup(ctx context.Context, groupID string) error
}

// NoGroupIndex is the index ChordPartDone takes for a header task without
// a group_index header (Celery scores it +inf: it comes last).
const NoGroupIndex = -1

// GroupStore is implemented by result backends that save group records
// (Celery's GroupResult.save and GroupResult.restore).
type GroupStore interface {
	SaveGroup(ctx context.Context, groupID string, rec []byte) error
	GetGroup(ctx context.Context, groupID string, dst []byte) ([]byte, bool, error)
}

// Backend stores result records (the JSON documents of celery-wire.md §5,
// encoded by the engine with codec.AppendResultJSON) under task ids.
// Implementations must be safe for concurrent use.
type Backend interface {
	// StoreResults saves each record under its task id and notifies
	// subscribers of that id. A stored SUCCESS record is never replaced.
	StoreResults(ctx context.Context, recs ...ResultRecord) error
	// GetResult appends the record stored for taskID to dst; found is
	// false when there is none (the task is PENDING).
	GetResult(ctx context.Context, taskID string, dst []byte) (rec []byte, found bool, err error)
	// Subscribe delivers every record stored for taskID after it returns.
	Subscribe(ctx context.Context, taskID string) (Subscription, error)
	// ForgetResult deletes the record of taskID.
	ForgetResult(ctx context.Context, taskID string) error
	// Close releases the backend's connections.
	Close() error
}

// LocalReader is implemented by result backends whose GetResult does not
// leave the process (the memory transport). A waiter reads such a backend
// before it subscribes, so that a finished task's record costs no
// subscription. On a networked backend a read is a round trip: a waiter
// subscribes first and then reads, as Celery does, so that a task not yet
// finished (a Get right after a send) costs two round trips before the
// wait instead of three.
type LocalReader interface {
	// ReadsLocally reports whether GetResult stays in the process.
	ReadsLocally() bool
}

// ResultRecord is one encoded result record to store. The backend copies
// what it keeps: the slices belong to the caller once StoreResults returns.
type ResultRecord struct {
	TaskID []byte
	Data   []byte
	// ReplyTo is the reply queue of the client waiting for the task, for a
	// record of a task the storing worker did not receive (the remaining
	// steps of a failed chain, a failed chord's body), which the rpc://
	// backend cannot route by a delivered message. Empty otherwise. Other
	// backends ignore it.
	ReplyTo []byte
}

// Subscription receives the records stored for one task id.
type Subscription interface {
	// Next waits for the next record and appends it to dst.
	Next(ctx context.Context, dst []byte) ([]byte, error)
	// Close ends the subscription.
	Close() error
}
