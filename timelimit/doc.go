// Package timelimit enforces Celery's soft and hard time limits on task runs.
//
// # Semantics
//
// A task run may have a soft limit, a hard limit, or both (Celery's
// soft_time_limit and time_limit; Limits.Or applies Celery's precedence of
// the per-call "timelimit" header over the task's own limits over the
// worker's task_soft_time_limit / task_time_limit).
//
//   - Soft limit: the task is told. In Celery, SoftTimeLimitExceeded is
//     raised inside the task so it can clean up. In Go, the engine cancels
//     the task's context with ErrSoftTimeLimitExceeded as the cause; the
//     task notices through ctx.Done() and recognises the reason with
//     errors.Is(context.Cause(ctx), timelimit.ErrSoftTimeLimitExceeded).
//   - Hard limit: the task has failed with TimeLimitExceeded
//     (ErrTimeLimitExceeded), whatever it does next.
//
// # What Go can and cannot do
//
// A goroutine cannot be killed in Go. Nothing in this package, or anywhere
// else, can stop a goroutine that does not cooperate: a task stuck in a
// `for {}` loop or a call that ignores its context runs on.
//
// With the goroutine pool, a hard limit therefore abandons the slot: the
// engine fails the task with TimeLimitExceeded, cancels its context (a last
// chance to notice), hands the pool slot to a replacement goroutine and
// reports the stuck one. The abandoned goroutine keeps running, keeps any
// memory it holds, and its eventual result is discarded. Only the prefork
// pool, which runs tasks in child processes, can really kill a task at its
// hard limit: it kills the child and starts a new one.
//
// # One structure for every deadline
//
// A Tracker keeps the deadlines of every running task in one min-heap served
// by a single goroutine and a single time.Timer, re-armed only when a new
// deadline becomes the earliest. There is no timer, goroutine or closure per
// task: Track and Handle.Done take one mutex, cost O(log n) and do not
// allocate once the Tracker's slab of entries has grown to the peak number of
// concurrent runs. Deadlines are rounded up to the Tracker's resolution, so
// limits fire at most one resolution late, never early, and neighbouring
// deadlines share one wake-up.
//
// The Tracker calls a Target (an interface, so the engine's pooled per-run
// struct can be the target without a closure) when a limit is reached. After
// Handle.Done returns, no call for that run is in progress or will follow, so
// the engine may reuse the run's state at once.
package timelimit
