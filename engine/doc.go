// Package engine is celerity's Celery engine: an App (configuration, task
// registry, producer, results) and a Worker (consumer loop, pool, acks,
// retries, ETA, expiry, revocation, rate and time limits), over any
// transport.Broker and transport.Backend. With no broker configured it runs
// in-process on transport/memory.
//
// # Tasks
//
// Register0..Register3 register typed handlers; arguments arrive decoded
// from the JSON the sender wrote, keyword arguments by the names given with
// Params, and the return value is stored as the JSON result. RegisterRaw
// registers the raw form, which reads its arguments as JSON views and sets
// its result with Task.Return: the zero-allocation path. A handler returns
// nil, an error (FAILURE, as a *TaskError for Python clients to rebuild),
// Retry(...), Reject(...) or ErrIgnore, like a Celery task.
//
// A task sent with the handler's context, or one derived from it, is the
// running task's child, as Celery's send_task makes it: its parent_id is
// the running task's id and its root_id the running task's root, unless
// the ParentID and RootID options say otherwise; once it is sent, the
// running task's result lists it in "children" (in the goroutine and solo
// pools; a prefork child's sends are not listed). As in Celery, a worker
// applies a task's callbacks and next chain step before it stores the
// task's result, which lists them among its children too.
//
// # The worker's hot path
//
// One goroutine fetches batches from the broker (bounded by the prefetch
// window: concurrency x worker_prefetch_multiplier), routes each message
// (unknown task, content type, revoked, expired, ETA, rate limit) and hands
// runnable ones to the pool in one call. Executors run tasks on a shared,
// reused context and collect acknowledgements, sending them in batches
// (ackBatch, or when they run out of work, or after ackDelay). Tasks held
// for an ETA or a rate-limit token wait in one timer heap and raise the
// prefetch bound while held, as Celery's basic.qos increments do. On the
// memory transport, with results ignored, a task costs no allocation.
//
// Early acknowledgement (the default) is sent in those batches, so a worker
// that crashes can redeliver up to ackBatch x concurrency tasks that had
// already started: at-least-once, never lost. Tasks with a time limit
// flush their slot's acknowledgements before they start, and a task that
// runs longer than two looks of the worker's ack watcher (ackWatchEvery,
// 100 ms) is acknowledged while it runs: no task holds its early ack long
// enough for the broker to deliver it again. The prefork pool acknowledges
// a task early at that watcher's next look after a child starts it (or as
// it ends, if sooner). As in Celery, Reject from a task acknowledged early
// leaves its message acknowledged.
//
// # Limits
//
// Soft time limits cancel the task's context (cause
// timelimit.ErrSoftTimeLimitExceeded). With the goroutine pool, hard limits
// fail the task with TimeLimitExceeded and abandon its goroutine, which Go
// cannot kill: the pool slot goes to a fresh goroutine and the stuck one is
// reported and left to finish on its own. The prefork pool (WorkerConfig
// Pool "prefork", worker_prefork.go) runs tasks in child processes of the
// same binary: there a hard limit kills the child, and max tasks / max
// memory per child really recycle it.
//
// Safe for concurrent use: App, Worker and AsyncResult. A *Task is owned
// by the handler running it.
package engine
