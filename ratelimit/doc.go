// Package ratelimit implements Celery's per-task rate limits: rate strings
// ("10/s", "100/m", "1000/h") and a token bucket per task type per worker.
//
// # Celery semantics
//
// Celery gives every rate-limited task type its own kombu TokenBucket with a
// capacity of one token, refilled continuously at the task's rate, and
// starts it full. A message whose bucket is empty is not dropped and does
// not occupy a pool slot: it waits in the bucket's FIFO until
// expected_time() says a token is due, while other task types keep flowing.
// A new rate (the rate_limit remote-control command) replaces the bucket with
// a new, full one.
//
// Bucket reproduces that bucket exactly, as the equivalent "generic cell rate
// algorithm": one atomic word holds the time at which the next token is due.
// Instead of holding a queue, Reserve hands out future tokens in call order
// and returns how long the caller must wait, so the engine can park the task
// in its own timer structure (as Celery's consumer does with timer.call_after)
// and run it when the wait is over, without asking again. Allow takes a token
// only if one is available now.
//
// One deliberate difference: kombu 5.2.4's TokenBucket does not refresh its
// timestamp while it is full, so the first token taken after an idle period
// leaves a stale timestamp and the next caller finds the bucket refilled at
// once: after idling, a "10/s" task runs twice back to back. Bucket does not
// copy that quirk; it admits exactly one token per interval.
//
// Capacity one means no bursts: a 100/s limit admits one task every 10ms,
// never two at once. A larger capacity (NewBucket) admits that many at once
// after an idle period, as kombu's TokenBucket(capacity=n) does.
//
// # Time
//
// Every method takes the current time as int64 nanoseconds from a monotonic
// clock, so one clock read can serve a whole batch of messages and tests can
// drive buckets with a fake clock. Now is such a clock; any clock works as
// long as all calls on a bucket use the same one and its values are >= 0.
//
// # Runtime changes
//
// Limiter is the per-worker registry of buckets by task name. Its Set may be
// called at any time (the rate_limit control command); lookups are a map read
// through an atomic pointer, and the bucket a name maps to never changes once
// created, so the engine can resolve Limiter.Bucket once per registered task
// and keep the pointer: later Sets change that bucket in place.
//
// Reserve, Allow, Limiter.Reserve and Limiter.Allow are lock-free and do not
// allocate.
package ratelimit
