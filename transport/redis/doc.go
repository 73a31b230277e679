// Package redis is celerity's Redis broker and result backend, compatible
// on the wire with Celery 5.2 / kombu 5.2: Python workers and clients and
// celerity workers and clients can share one Redis, its queues, its
// unacknowledged-message bookkeeping and its result records
// (../../../shared/celery-wire.md §3 and §5 describe the formats).
//
// NewBroker returns a *Broker (transport.Broker) and NewBackend a
// *Backend (transport.Backend). Both are safe for concurrent use. They
// use github.com/redis/rueidis: commands issued concurrently are
// pipelined automatically, and batches go out in one round trip. Redis
// 6.2 or newer is required (RPOP with a count, BLMOVE).
//
// # URLs and options
//
// URLs are the ones Celery accepts:
//
//	redis://[[user]:password@]host[:port][/db]
//	rediss://...?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem   (TLS)
//	redis+socket:///run/redis.sock?virtual_host=2               (also socket://, unix://?db=)
//
// kombu transport options can be given as query parameters
// (?visibility_timeout=600&global_keyprefix=app1:) or with
// WithTransportOptions (Celery's broker_transport_options, same names) and
// the With* options: visibility_timeout, queue_order_strategy,
// priority_steps, global_keyprefix, unacked_key, unacked_index_key,
// unacked_mutex_key, unacked_mutex_expire, unacked_restore_limit, and
// result_expires for the backend.
//
// # Publishing
//
// A message is kombu's JSON envelope (codec.AppendRedisEnvelope, base64
// body, a fresh UUID delivery tag per publish) LPUSHed onto its queue's
// list for its priority: the queue name for priorities below the second
// step, queue+"\x06\x16"+step otherwise (steps 0, 3, 6, 9 by default; on
// Redis 0 is served first). Consecutive messages for one list go in one
// LPUSH, and all lists of a Publish call in one round trip. A non-empty
// exchange is routed through kombu's binding sets (_kombu.binding.<x>).
//
// # Consuming without losing messages
//
// kombu's consumer BRPOPs a message and then, in a second step, records it
// in the unacked hash and the unacked_index sorted set. A worker that dies
// (or a connection that drops) between the two loses the message. Here
// the pop and the record are one Lua script, so a message is at every
// moment either in its list or in the bookkeeping:
//
//   - Each consumer has a fetcher goroutine that keeps the prefetch window
//     full: whenever there is room it runs one script that pops up to that
//     many messages (RPOP with a count) across all queues x priority
//     buckets in kombu's order (all base lists before any \x06\x163 list;
//     queues share a batch round-robin, interleaved, and the starting queue
//     rotates between fetches), and for each message HSETs
//     unacked[tag] = [envelope, "", queue] and ZADDs unacked_index[tag] =
//     now, exactly the layout kombu writes and reads, so Python workers can
//     restore what we hold and the reverse. The triple names the queue the
//     message was taken from as routing key with the default exchange,
//     which makes every restorer put it back exactly there. Fetch decodes
//     the envelopes the fetcher buffered, so the script for the next batch
//     runs while the caller handles the last one; buffered envelopes count
//     against the prefetch window like the messages handed out.
//   - Only when that finds nothing does the fetcher block, without
//     polling: one watcher goroutine per list waits on its own connection
//     with BLMOVE list list LEFT LEFT, which returns as soon as the list is
//     non-empty and moves its newest element onto itself — a no-op that
//     never takes the message out of the list. The watcher then wakes the
//     fetcher, which runs the script again.
//   - The script's reply could still be lost with the connection. Every
//     fetch records its messages with a score unique to that fetch; after
//     a failed fetch the consumer looks the score up and puts those
//     messages back before fetching again, instead of leaving them for
//     the visibility timeout.
//   - Envelopes that do not decode (not JSON, no delivery tag, bad
//     base64...) are logged, dropped from the bookkeeping (Celery rejects
//     them too) and never reach the caller; the fetch goes on.
//
// Acknowledgements cost no round trip of their own: Ack queues the tags
// and the next fetch script removes them (ZREM unacked_index + HDEL
// unacked) before it pops; if no fetch comes within a millisecond, a
// background flush sends them. Like AMQP's basic.ack, Ack therefore returns
// before Redis has the acknowledgement (a crash in that millisecond means
// a redelivery, which acks_late allows). While messages are held and the
// prefetch window is 32 or more, the fetcher waits until an eighth of the
// window is free rather than fetching a few messages per acknowledgement.
//
// Reject with requeue and Close restore as kombu's restore_by_tag does, in
// one script per batch: take the triple, forget the tag, insert
// "redelivered": true into the envelope's headers and
// properties.delivery_info (as text, leaving the rest byte for byte), and
// LPUSH (reject: back of the queue) or RPUSH (close: front of the queue,
// oldest first) it onto the base list. Close puts envelopes that were
// buffered but never handed out back unflagged. Acks, rejects and restores are
// idempotent and retried on connection errors.
//
// unacked_index also holds one member of ours, with score -1 and a name
// longer than 64 bytes: it keeps the sorted set in Redis's skiplist
// encoding, where ZADD and ZREM cost a fraction of what they cost in the
// listpack a small set would otherwise use. Kombu's restorer and ours
// only read scores from 0 up and never see it; Broker.Close removes it.
//
// # Visibility timeout, ETA tasks and the heartbeat
//
// Like kombu, every consumer periodically runs restore_visible: under the
// unacked_mutex (SET NX PX, honouring a Python worker that holds it),
// messages whose unacked_index score is older than visibility_timeout
// are put back on their queues, flagged redelivered. That is how messages
// of a worker killed with kill -9 come back, whoever held them.
//
// kombu's weakness is that a live worker holding a message longer than
// the visibility timeout — an ETA or countdown task waiting for its time,
// or a long acks_late task — loses it to another worker, which runs it a
// second time (kombu#337, celery#2599). Here each consumer refreshes the
// score of every message it holds (ZADD XX now) every quarter of the
// visibility timeout, and at least every 30 seconds, so no restorer, Go or
// Python, ever sees a message held by a live consumer as abandoned (as
// long as the restorer's visibility timeout is above 30 seconds, or ours).
// A consumer that dies stops refreshing, and its messages come back one
// visibility timeout later. (Python workers do not refresh: an ETA task
// held by a Python worker for longer than the visibility timeout is still
// restored by any restorer, ours included, exactly as between Python
// workers; give all workers the same, long enough, visibility timeout.)
//
// One kombu hazard remains: a restored message keeps its delivery tag, so
// if its first holder was merely slow (not dead) and acknowledges it after
// another consumer fetched it again, that acknowledgement erases the new
// holder's bookkeeping entry. The heartbeat makes this as rare as a
// consumer stalled for longer than the visibility timeout.
//
// # Connection loss
//
// rueidis reconnects by itself. Publishes, acks, requeues and result
// writes that fail with a connection error are retried with exponential
// backoff (10ms to 1s) for up to the retry timeout (WithRetryTimeout,
// 20s). A publish whose reply was lost may thus be sent twice: delivery
// is at least once. The fetcher and the watchers log the error, back off
// (10ms to 1s) and carry on by themselves; Fetch just waits.
//
// # Result backend
//
// Records live under celery-task-meta-<id> (groups: celery-taskset-meta-
// <id>). StoreResults writes each with one script — GET, and unless the
// stored state is SUCCESS, SETEX (result_expires, default one day) and
// PUBLISH on the key's name — pipelined for a batch, so a SUCCESS is never
// replaced even by concurrent writers. Subscribe shares one pub/sub
// connection between all subscriptions (reference counted SUBSCRIBE and
// UNSUBSCRIBE per channel) and returns once the server confirmed the
// subscription; the engine then reads the key once, as Celery's client
// does. After a reconnection the hub resubscribes and re-reads every
// subscribed key. Chord counters follow Celery 5.2 (.j sorted set scored
// by group index, .s size, .t extra count): see ChordPartDone.
//
// # Ownership
//
// Fetched messages belong to the caller (release them with
// codec.ReleaseMessage after Ack, Reject or Close); their byte fields are
// views into the envelope read from Redis, which is never reused. Publish
// takes ownership of its messages. Records passed to StoreResults and
// buffers passed to SaveGroup or ChordPartDone stay the caller's.
package redis
