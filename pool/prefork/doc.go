// Package prefork runs tasks in child processes: Celery's prefork pool. A
// goroutine cannot be killed; a process can. This pool is how a worker
// enforces real hard time limits and frees the memory leaky tasks hold.
//
// The package is generic: a task is an opaque request payload and an opaque
// reply. The engine encodes a task into a Request and decodes the Result.
//
// # Parent and child
//
// The parent (the worker) builds a Pool from a Config whose Command starts
// a child, normally its own binary again. The child's main checks IsChild
// first and calls ServeChild with a Handler, which runs one task:
//
//	func main() {
//		if prefork.IsChild() {
//			if err := prefork.ServeChild(handle); err != nil {
//				fmt.Fprintln(os.Stderr, err)
//				os.Exit(1)
//			}
//			os.Exit(0)
//		}
//		...
//	}
//
// The pool passes the child three descriptors through exec.Cmd.ExtraFiles
// (a request pipe, a reply pipe and a progress page) and describes them in
// the EnvChild environment variable, CELERITY_PREFORK_CHILD. The child's
// stdin, stdout and stderr stay free for the task: a task that prints
// cannot corrupt the protocol. ServeChild removes the variable from the
// environment and marks the descriptors close-on-exec, so programs a task
// runs are not mistaken for children and do not inherit the pipes.
//
// # Protocol
//
// Both pipes carry frames: a little-endian uint32 payload length, then the
// payload. The child first writes an 8-byte greeting ("CLRYPF01"); a child
// that writes anything else, or exits first, fails to start (Start returns
// the error; later, the slot retries with back-off). Frames longer than
// Config.MaxFrame (64 MiB by default) are refused at both ends, so that a
// broken or hostile peer cannot make the other allocate without bound; a
// child that sends a malformed frame, or a reply nobody asked for, is
// killed and replaced (ErrMalformedFrame in the log and in ErrChildLost).
//
// A child runs its tasks one at a time, in order. Frames are batched both
// ways: the parent writes every task waiting for a child in one write, and
// the child writes its replies when its input runs dry, one write for a
// whole batch (a background flush after 1ms keeps a long task from holding
// back the replies of the short tasks before it). Config.PipelineDepth is
// how many tasks a child may hold: 1, the default, is Celery's -Ofair (a
// task goes only to an idle child); a larger depth lets tiny tasks travel
// in batches (see BenchmarkNoop).
//
// The progress page is a 4 KiB shared memory page (memfd) in which the
// child stores the number of tasks it has started and finished, with two
// atomic stores per task. The parent reads it only when it must know
// exactly where a child is: when a hard limit fires and when a child dies.
//
// # Outcomes
//
// Every Submit that returns nil gets exactly one call of its done function:
//
//   - Err nil: the child's reply, in Result.Payload (a view, valid until
//     done returns).
//   - ErrTimeLimitExceeded (the timelimit package's value): the task ran
//     past Request.HardLimit; its child was killed with SIGKILL and
//     replaced. Limits live in one timelimit.Tracker (one heap, one timer)
//     and fire at most 5ms late. A task's clock starts when it is sent to
//     an idle child, or when the reply of the task before it arrives.
//   - ErrChildLost: the child died while running the task (a crash, a
//     panic, an out-of-memory kill, kill -9 from outside, a protocol
//     violation). The message carries the pid, the exit status or signal
//     and, when the pool captured the child's stderr, the panic line.
//     It is also the error of the rare task that had finished when its
//     child died, before its reply was written.
//   - ErrStopped: Stop returned the task without running it.
//
// Tasks pipelined behind the one a child was running when it died never
// started (the progress page says so): the pool puts them back at the
// head of its queue and another child runs them. Deciding what a lost task
// means (fail it, or requeue it under acks_late and reject_on_worker_lost)
// is the engine's business, as is acknowledging a task early when the pool
// reports it started (Request.Started).
//
// # Recycling
//
// MaxTasksPerChild retires a child after exactly N tasks: it is given no
// more, finishes the ones it holds, sees its request pipe close and exits,
// and a new child takes its slot. MaxMemoryPerChild reads the child's
// resident memory (one pread of /proc/<pid>/statm per batch of replies,
// so at most once per task) and retires the child after the task that
// crossed the limit. A retiring child still counts against Procs until it
// exits, so no more than Procs tasks ever run at once.
//
// # Lifecycle
//
// New, then Start (which waits for every child's greeting), Submit from
// any goroutine, Resize for pool_grow/pool_shrink and the Autoscaler, and
// Stop. Stop is soft first: tasks no child has taken are returned with
// ErrStopped, children finish the tasks they hold and exit. When Stop's
// context ends, the remaining children are killed. Stop returns once every
// child has been reaped. Children are started with Pdeathsig SIGKILL (from
// one OS thread that lives as long as they do), so a parent that dies
// takes its children with it; ServeChild ignores SIGINT, so a Ctrl-C in a
// terminal leaves the warm shutdown to the parent.
//
// # Autoscaling
//
// Autoscaler applies Celery's --autoscale=MAX,MIN rule (grow at once to the
// load, shrink after a keepalive) to any Resizer: this package's Pool or
// the goroutine pool.
//
// # Platform
//
// Linux: the pool uses memfd_create, /proc/<pid>/statm and Pdeathsig.
package prefork
