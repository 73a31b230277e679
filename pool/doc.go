// Package pool runs jobs handed over by a worker's consumer loop.
//
// Two pools live here:
//
//   - Goroutine: N executor goroutines, hosted on an ants pool, that pull
//     jobs one at a time from one bounded run queue. Handing a job over is
//     a mutex-protected ring push and pop; a goroutine is woken only when it
//     was idle. There is no goroutine, channel send or allocation per job.
//   - Solo: runs each job in the submitting goroutine (Celery's -P solo).
//
// Child processes are the only way to really kill a task or to free memory
// a task leaked: that is pool/prefork, which the engine uses for
// worker_pool "prefork".
//
// # What Go can and cannot do
//
// A goroutine cannot be killed. MaxTasksPerChild ends an executor goroutine
// after exactly N jobs (runtime.Goexit inside its ants worker, so ants starts
// a genuinely new goroutine for the replacement): the stack and any
// goroutine-local state are renewed, but heap memory a task leaked stays
// leaked. Abandon, used for hard time limits, gives the slot to a
// replacement executor at once; the stuck goroutine keeps running until its
// job returns, and then exits instead of taking more work.
package pool
