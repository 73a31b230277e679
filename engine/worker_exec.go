package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/pool"
	"github.com/celerity-go/celerity/ratelimit"
	"github.com/celerity-go/celerity/timelimit"
	"github.com/celerity-go/celerity/transport"
)

// slotState is one executor's private state, reused for every task it runs.
type slotState struct {
	task    Task
	pending []*codec.Message // acknowledgements not sent yet
	release []*codec.Message // messages to release after the next flush
	flushed int64            // last flush, as ratelimit.Now: no pending ack is older
	unsent  uint             // tasks run since the last flush
	ageAt   uint             // unsent count at which afterTask looks at the age of pending acks
	rec     codec.Result
	buf     []byte
	// stored is storeResult's argument list: a slice made at the call
	// would be allocated, since the backend is an interface.
	stored  [1]transport.ResultRecord
	fetched []*codec.Message // poll's batch
	ready   []job            // poll's runnable jobs
	// lookedAt is the ratelimit.Now afterTask last read, if no task has
	// started since (else 0): a flush right after uses it (see flushSlot).
	lookedAt int64
	// succeeded counts the successes not yet added to WorkerStats (at
	// each flush): an atomic add per task was 7 of the worker's 147
	// CPU-ns per task in BenchmarkEngineMemoryNoop at c=2.
	succeeded int64

	// ctx is the context handed to tasks; it is replaced only after a
	// task cancelled it (terminate, soft time limit), so that tasks share
	// one context without allocation.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// The running task's fields below are the executor's to write
	// between runs; other goroutines (visitors: inspect active, revoke
	// with terminate, sends from goroutines a handler started, the
	// acknowledgement watcher, the time-limit tracker) read them, and the
	// ones marked so write them, only during a run, holding mu (see
	// visit). The executor itself takes no lock per task: it writes the
	// fields, then publishes the run's number (startRun), and withdraws
	// it when the handler has returned (endRun), waiting only if a
	// visitor is inside mu at that moment. Two atomic stores per task
	// instead of a lock and an unlock at each end (four atomic
	// operations, each of which waits for the core's earlier loads and
	// stores, some of them cache misses on a message the producer's core
	// wrote): BenchmarkEngineMemoryNoop x0.90 at c=2 and x0.94 at c=64
	// in the VM's far vCPU placement (medians of 30 interleaved runs).
	mu        sync.Mutex
	published atomic.Uint64 // the running run's number; 0 between runs
	visiting  atomic.Bool   // a visitor holds mu (set and cleared under mu)
	running   []byte        // id of the running task (a view)
	run       uint64        // counts the slot's runs: see sentFrom.list
	watched   uint64        // the run watchAcks saw at its last look; the watcher's, under mu
	root      string        // its root id (a view): see inherit
	// children lists the tasks sent from inside the running task, as the
	// JSON "children" of its result (empty = none); visitors append.
	children []byte

	// Time limits of the running task (see TimeLimitExceeded).
	w         *Worker
	slot      *pool.Slot
	limits    timelimit.Limits
	lateAck   bool            // the running task is acked after it ran
	fired     timelimit.Limit // the strongest limit reached; the tracker writes it
	abandoned bool            // hard limit: the task was failed for it; the tracker writes it
}

// startRun publishes the run whose fields the executor has just written:
// visitors may read them from now until endRun.
func (st *slotState) startRun() { st.published.Store(st.run) }

// endRun withdraws the running run. After it no visitor reads or writes
// the run's fields, and what visitors wrote is visible to the executor.
// A visitor sets visiting before it reads published and the executor
// clears published before it reads visiting (sequentially consistent
// atomics), so at least one of them sees the other: either the visitor
// finds no run, or the executor waits for the visitor to leave mu.
func (st *slotState) endRun() {
	st.published.Store(0)
	if st.visiting.Load() {
		st.mu.Lock() // waits for the visitor to leave
		st.mu.Unlock()
	}
}

// visit takes mu as a visitor (see slotState) and returns the run being
// published, 0 if none: the run's fields may be used only if it is not 0.
// Pair it with leave.
func (st *slotState) visit() uint64 {
	st.mu.Lock()
	st.visiting.Store(true)
	return st.published.Load()
}

// leave ends a visit.
func (st *slotState) leave() {
	st.visiting.Store(false)
	st.mu.Unlock()
}

// TimeLimitExceeded implements timelimit.Target for the slot's running
// task. It runs on the tracker's goroutine, as a visitor, while the
// executor is inside the handler (the executor's Handle.Done waits for it
// before endRun), and allocates its own result buffer.
func (st *slotState) TimeLimitExceeded(l timelimit.Limit) {
	st.visit()
	st.fired = l
	st.cancel(l.Err())
	m := st.task.msg
	if l == timelimit.Hard {
		st.abandoned = true
	}
	st.leave()
	if l != timelimit.Hard {
		return
	}
	w := st.w
	w.stats.Failed.Add(1)
	w.app.errorf("worker: task exceeded its hard time limit; abandoning its goroutine (Go cannot kill it)",
		"task", string(m.Task), "id", string(m.ID), "limit", st.limits.Hard)
	w.storeTimeLimitExceeded(m, st.limits.Hard)
	if st.lateAck {
		if err := w.consumer.Ack(m); err != nil {
			w.app.warnf("worker: ack", "err", err)
		}
	}
	w.exec.Abandon(st.slot)
}

// taskContext is the context a handler runs with: its slot's cancellable
// context, through which a task sent from inside the handler finds the
// task it is sent from (Celery's current_worker_task) to take it as its
// parent (see inherit). There is one per slot, renewed only after a
// cancellation, so that a run allocates no context. A send made with it
// after the handler returned finds the slot's next task, if any, or none.
type taskContext struct {
	context.Context
	st *slotState
}

// runningKey is the context key a taskContext answers with its slot.
type runningKey struct{}

func (c *taskContext) Value(key any) any {
	if key == (runningKey{}) {
		return c.st
	}
	return c.Context.Value(key)
}

// renewContext gives st a fresh cancellable taskContext under parent. It
// runs on the executor before the slot's first run or between runs.
func (st *slotState) renewContext(parent context.Context) {
	ctx, cancel := context.WithCancelCause(parent)
	st.ctx, st.cancel = &taskContext{Context: ctx, st: st}, cancel
}

// runningSlot returns the slot whose handler context ctx is or derives
// from, or nil. For any other context it walks ctx's chain (ctx.Value),
// which every send pays: 5 ns, 4 % of BenchmarkEngineMemoryNoop at c=2
// run on one processor (13 interleaved runs), the price of giving tasks
// sent from inside a handler their parent, as Celery does.
func runningSlot(ctx context.Context) *slotState {
	if c, ok := ctx.(*taskContext); ok { // the handler's own context: no walk
		return c.st
	}
	st, _ := ctx.Value(runningKey{}).(*slotState)
	return st
}

// inherit makes m a child of the task running in st, if one is, as
// Celery's send_task does for a task sent from inside another: *parentID
// becomes the running task's id and *rootID its root (each unless nil),
// copied into m's storage. It returns the run to list m in once m is
// published (sentFrom.list), or 0 when st runs nothing. The ids are copied
// during a visit (see slotState), so a send from another goroutine reads
// them whole.
func (st *slotState) inherit(m *codec.Message, rootID, parentID *[]byte) uint64 {
	run := st.visit()
	defer st.leave()
	if run == 0 {
		return 0
	}
	if parentID != nil {
		*parentID = m.Own(st.running)
	}
	if rootID != nil {
		*rootID = m.OwnString(st.root)
	}
	return run
}

// sendingRun returns the handler run ctx is the context of (see
// runningSlot), or none: what a group or chord sent with ctx is listed in.
func sendingRun(ctx context.Context) sentFrom {
	if st := runningSlot(ctx); st != nil {
		if run := st.inherit(nil, nil, nil); run != 0 {
			return sentFrom{st, run}
		}
	}
	return sentFrom{}
}

// list lists ref, sent during the run f names (see inherit), in the result
// "children" of that run's task, as Celery's add_to_parent does once the
// task is sent; not if that run has ended.
func (f sentFrom) list(ref *codec.ResultRef) {
	st := f.st
	if st == nil {
		return
	}
	if st.visit() == f.run {
		st.listChild(ref)
	}
	st.leave()
}

// listChild adds ref to st.children: from a visitor during the run (list),
// or from the executor after the handler returned, for what it applies
// then (callbacks, next chain step, retry).
func (st *slotState) listChild(ref *codec.ResultRef) {
	if len(st.children) == 0 {
		st.children = append(st.children, '[')
	} else {
		st.children = append(st.children[:len(st.children)-1], ", "...)
	}
	st.children = codec.AppendResultRef(st.children, ref)
	st.children = append(st.children, ']')
}

// emptiedChildren returns a children list emptied for the next run, or nil
// when a big fan-out grew it past 64 KiB, which a slot should not keep for
// good.
func emptiedChildren(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

// ErrTerminated is the cause of a task context cancelled by revoke with
// terminate.
var ErrTerminated = errors.New("engine: task terminated")

func (w *Worker) initSlot(s *pool.Slot) {
	st := &slotState{w: w, slot: s}
	st.renewContext(w.baseCtx)
	s.State = st
	w.slots.Store(st, struct{}{})
}

// runJob runs one task on an executor.
func (w *Worker) runJob(s *pool.Slot, j job) {
	st := s.State.(*slotState)
	st.lookedAt = 0
	m, def := j.m, j.def
	if w.app.revoked.has(m.ID) {
		// Revoked while it waited for an executor: Celery does not run it
		// either (its prefork pool skips a revoked job it has not yet
		// written to a child; solo checks as the task starts).
		w.discard(m, "revoked")
		return
	}
	acksLate := w.app.cfg.TaskAcksLate
	if def.opts.acksLate != nil {
		acksLate = *def.opts.acksLate
	}
	if !acksLate {
		st.collect(m)
	}

	t := &st.task
	t.reset(w, def, m)
	if err := w.decodeArgs(t); err != nil {
		w.stats.Failed.Add(1)
		w.app.errorf("worker: undecodable task body", "task", t.Name, "id", t.ID, "err", err)
		w.storeFailure(m, "DecodeError", "kombu.exceptions", err.Error())
		w.finishJob(st, m, acksLate)
		return
	}
	if w.trackStarted(def) {
		w.storeStarted(st, m)
	}
	if h := w.app.hooks.TaskPrerun; h != nil {
		h(t)
	}
	limits := w.timeLimits(def, m)
	if limits != (timelimit.Limits{}) {
		// The task may overrun and be abandoned: send what this slot owes,
		// including this task's early ack, before it starts.
		w.flushSlot(st)
	}
	if w.app.timed {
		t.started = time.Now()
	}
	ctx := st.ctx
	st.running, st.root, st.children = m.ID, rootOf(t), emptiedChildren(st.children)
	st.run++
	st.limits, st.lateAck, st.fired = limits, acksLate, 0
	st.startRun()

	h := w.deadline.Track(limits, st)
	err := call(def.handler, ctx, t)
	h.Done()
	if w.app.timed {
		t.runtime = time.Since(t.started)
	}

	st.endRun()
	st.running, st.root = nil, ""
	fired, abandoned := st.fired, st.abandoned
	if st.ctx.Err() != nil { // cancelled during this task: renew
		st.renewContext(w.baseCtx)
	}
	if abandoned {
		// Failed and acknowledged at the hard limit; this goroutine lost
		// its slot and leaves. Only the message is left to release.
		w.slots.Delete(st)
		w.flushSlot(st)
		codec.ReleaseMessage(m)
		return
	}
	if fired == timelimit.Soft && err != nil && errors.Is(context.Cause(ctx), timelimit.ErrSoftTimeLimitExceeded) {
		err = &TaskError{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions", Args: []any{}}
	}
	if err != nil && !errors.Is(err, ErrTerminated) && errors.Is(context.Cause(ctx), ErrTerminated) {
		// revoke(terminate=True) and the handler returned ctx.Err()
		// (context.Canceled), not the cause: it was still terminated.
		err = ErrTerminated
	}

	state := w.outcome(st, t, err)
	if h := w.app.hooks.TaskPostrun; h != nil {
		h(t, state)
	}
	w.finishJob(st, m, acksLate && state != codec.StateRejected)
}

// finishJob queues m's late ack (when lateAck) and its release, and sends
// acknowledgements when due.
func (w *Worker) finishJob(st *slotState, m *codec.Message, lateAck bool) {
	if lateAck {
		st.collect(m)
	}
	st.release = append(st.release, m)
	w.afterTask(st)
}

// timeLimits resolves a run's limits: the message's timelimit header, then
// the task's own, then the worker defaults (Celery's precedence).
func (w *Worker) timeLimits(def *taskDef, m *codec.Message) timelimit.Limits {
	var call timelimit.Limits
	if m.TimeLimit.HasHard {
		call.Hard = time.Duration(m.TimeLimit.Hard * float64(time.Second))
	}
	if m.TimeLimit.HasSoft {
		call.Soft = time.Duration(m.TimeLimit.Soft * float64(time.Second))
	}
	return call.
		Or(timelimit.Limits{Hard: def.opts.timeLimit, Soft: def.opts.softTimeLimit}).
		Or(timelimit.Limits{Hard: w.app.cfg.TaskTimeLimit, Soft: w.app.cfg.TaskSoftTimeLimit})
}

// call runs h, turning a panic into an error.
func call(h Handler, ctx context.Context, t *Task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &TaskError{Type: "Exception", Module: "builtins",
				Args: []any{fmt.Sprintf("panic: %v", p)}, Traceback: string(debug.Stack())}
		}
	}()
	return h(ctx, t)
}

// decodeArgs finds the args, kwargs and embed of t's message. The body
// of a call without arguments, byte for byte what Celery and celerity
// write, needs no scanning.
func (w *Worker) decodeArgs(t *Task) error {
	body, err := t.msg.BodyJSON(0)
	if err != nil {
		return err
	}
	if bytes.Equal(body, emptyBody) {
		t.args, t.kwargs, t.embed = emptyArray, emptyObject, defaultEmbed
		return nil
	}
	t.args, t.kwargs, t.embed, err = codec.SplitJSONBody(body)
	return err
}

func (w *Worker) trackStarted(def *taskDef) bool {
	if def.opts.trackStarted != nil {
		return *def.opts.trackStarted
	}
	return w.app.cfg.TaskTrackStarted
}

func (w *Worker) ignoreResult(def *taskDef, m *codec.Message) bool {
	if m.IgnoreResult {
		return true
	}
	if def.opts.ignoreResult != nil {
		return *def.opts.ignoreResult
	}
	return w.app.cfg.TaskIgnoreResult
}

// outcome records what the handler's return means and returns the state.
func (w *Worker) outcome(st *slotState, t *Task, err error) codec.State {
	m, def := t.msg, t.def
	if err == nil {
		st.succeeded++
		result := jsonNull
		if t.hasResult {
			result = t.result
		}
		// As Celery's tracer: callbacks and the next chain step are
		// applied before the result is stored, so that its children list
		// them; a chord part is counted after, once its result can be read.
		e, canvas := w.decodeEmbed(t)
		if canvas {
			w.applyNext(st, t, e, result)
		}
		if !w.ignoreResult(def, m) {
			r := &st.rec
			*r = codec.Result{State: codec.StateSuccess, Result: result, TaskID: m.ID,
				GroupID: m.Group, ParentID: m.ParentID, DateDone: time.Now()}
			w.storeWith(st, r)
		}
		if canvas && e.Chord != nil && t.GroupID != "" {
			w.chordPart(t, codec.StateSuccess, result, e.Chord)
		}
		if h := w.app.hooks.TaskSuccess; h != nil {
			h(t)
		}
		return codec.StateSuccess
	}

	var retry *RetryError
	var reject *RejectError
	switch {
	case errors.Is(err, ErrIgnore):
		return codec.StateIgnored
	case errors.Is(err, ErrTerminated):
		// revoke(terminate=True): REVOKED ["terminated"], as Celery records it.
		w.stats.Revoked.Add(1)
		if !w.ignoreResult(def, m) {
			w.storeException(m, codec.StateRevoked, "TaskRevokedError", "celery.exceptions", "terminated")
		}
		if h := w.app.hooks.TaskRevoked; h != nil {
			h(m.ID, "terminated")
		}
		return codec.StateRevoked
	case errors.As(err, &reject):
		w.stats.Rejected.Add(1)
		// As Celery's Request.reject: a task acknowledged before it ran
		// (acks early) has no message left to reject.
		if st.lateAck {
			if e := w.consumer.Reject(reject.Requeue, m); e != nil {
				w.app.warnf("worker: reject", "err", e)
			}
		}
		if h := w.app.hooks.TaskRejected; h != nil {
			h(m, reject)
		}
		return codec.StateRejected
	case errors.As(err, &retry):
	case def.opts.autoretry != nil && def.opts.autoretry(err):
		retry = &RetryError{Err: err, Countdown: w.backoff(def, m.Retries)}
	}
	if retry != nil {
		if state, ok := w.retry(st, t, retry); ok {
			return state
		}
		// Max retries exceeded: fail with the retry's reason.
		err = retry.Err
		if err == nil {
			err = &TaskError{Type: "MaxRetriesExceededError", Module: "celery.exceptions",
				Args: []any{fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", t.Name, t.ID, t.args, t.kwargs)}}
		}
	}

	w.stats.Failed.Add(1)
	if !w.ignoreResult(def, m) {
		w.storeError(st, m, codec.StateFailure, err)
	}
	if hasCanvas(t.embed) {
		typ, mod, args, _ := Exception(err)
		w.afterFailure(t, codec.AppendExceptionJSON(nil, typ, mod, args...))
	}
	w.app.log.Info("task failed", "task", t.Name, "id", t.ID, "err", err)
	if h := w.app.hooks.TaskFailure; h != nil {
		h(t, err)
	}
	return codec.StateFailure
}

// backoff is Celery's retry_backoff countdown for the given retry count.
func (w *Worker) backoff(def *taskDef, retries int) time.Duration {
	o := def.opts
	if o.retryBackoff <= 0 {
		return 0
	}
	ceiling := o.retryBackoffMax
	if ceiling <= 0 {
		ceiling = 600 * time.Second
	}
	d := ceiling
	if retries < 32 {
		d = min(ceiling, o.retryBackoff<<retries)
	}
	if o.retryJitter {
		// Celery: a random integer number of seconds in [0, countdown].
		d = time.Duration(rand.Int64N(int64(d/time.Second)+1)) * time.Second
	}
	return d
}

// retry re-publishes t as Celery's Task.retry does; ok is false when max
// retries are exceeded.
func (w *Worker) retry(st *slotState, t *Task, r *RetryError) (codec.State, bool) {
	m, def := t.msg, t.def
	maxRetries := w.app.cfg.TaskMaxRetries
	if def.opts.hasMaxRetries {
		maxRetries = def.opts.maxRetries
	}
	if r.HasMaxRetries {
		maxRetries = r.MaxRetries
	}
	if maxRetries >= 0 && m.Retries >= maxRetries {
		return 0, false
	}
	eta := r.ETA
	if eta.IsZero() {
		countdown := r.Countdown
		if countdown == 0 {
			countdown = w.app.cfg.TaskDefaultRetryDelay
			if def.opts.retryDelay > 0 {
				countdown = def.opts.retryDelay
			}
		}
		eta = time.Now().Add(countdown)
	}
	next := m.Clone()
	next.Retries = m.Retries + 1
	next.ETA = eta
	next.ParentID = next.ID
	next.Origin = origin
	next.Redelivered = false
	next.DeliveryTag = nil
	next.Tag = 0
	if err := w.app.publish(contextBackground, next, sentFrom{}); err != nil {
		w.app.errorf("worker: retry publish failed", "task", t.Name, "id", t.ID, "err", err)
		return 0, false
	}
	// Celery's retry sends the task again from inside it, so the RETRY
	// record lists the new message (same id) among its children.
	st.listChild(&codec.ResultRef{ID: m.ID})
	w.stats.Retried.Add(1)
	if !w.ignoreResult(def, m) {
		w.storeError(st, m, codec.StateRetry, r.Err)
	}
	if h := w.app.hooks.TaskRetry; h != nil {
		h(t, r.Err)
	}
	return codec.StateRetry, true
}

var jsonNull = []byte("null")

// storeStarted records STARTED {"pid", "hostname"}.
func (w *Worker) storeStarted(st *slotState, m *codec.Message) {
	st.buf = fmt.Appendf(st.buf[:0], `{"pid": %d, "hostname": %q}`, pid, w.app.cfg.Hostname)
	r := &st.rec
	*r = codec.Result{State: codec.StateStarted, Result: st.buf, TaskID: m.ID, GroupID: m.Group, ParentID: m.ParentID}
	w.storeWith(st, r)
}

// storeError records a FAILURE, RETRY or REVOKED with err as exception.
func (w *Worker) storeError(st *slotState, m *codec.Message, state codec.State, err error) {
	var exc []byte
	var tb []byte
	if err != nil {
		typ, mod, args, trace := Exception(err)
		exc = codec.AppendExceptionJSON(nil, typ, mod, args...)
		if trace != "" {
			tb = []byte(trace)
		}
	} else {
		exc = jsonNull
	}
	r := &st.rec
	*r = codec.Result{State: state, Result: exc, Traceback: tb, TaskID: m.ID, GroupID: m.Group, ParentID: m.ParentID}
	if state.Ready() {
		r.DateDone = time.Now()
	}
	w.storeWith(st, r)
}

// Exception returns the Celery exception fields a task error is recorded
// with: class name, module, args and traceback text.
func Exception(err error) (typ, module string, args []string, traceback string) {
	var te *TaskError
	if errors.As(err, &te) {
		args = make([]string, len(te.Args))
		for i, a := range te.Args {
			args[i] = fmt.Sprint(a)
		}
		return te.Type, te.Module, args, te.Traceback
	}
	return "Exception", "builtins", []string{err.Error()}, ""
}

// storeFailure records a FAILURE for a message that did not run (no
// executor state at hand).
func (w *Worker) storeFailure(m *codec.Message, typ, module, msg string) {
	w.storeException(m, codec.StateFailure, typ, module, msg)
}

func (w *Worker) storeException(m *codec.Message, state codec.State, typ, module, msg string) {
	if w.app.backend == nil || m.IgnoreResult {
		return
	}
	w.storeExceptionJSON(m, state, codec.AppendExceptionJSON(nil, typ, module, msg))
}

// storeExceptionJSON records m as state with exc, an encoded exception,
// as its result.
func (w *Worker) storeExceptionJSON(m *codec.Message, state codec.State, exc []byte) {
	r := codec.Result{State: state, Result: exc,
		TaskID: m.ID, GroupID: m.Group, ParentID: m.ParentID, DateDone: time.Now()}
	if w.app.cfg.ResultExtended {
		w.describe(&r, m)
	}
	if err := w.storeResult(contextBackground, &r, nil); err != nil {
		w.app.errorf("worker: store result", "id", string(m.ID), "err", err)
	}
}

// describe fills r's result_extended fields from m, a message that did
// not run to its end (expired, revoked, undecodable, over its time
// limit), as Celery describes its request; args and kwargs stay null when
// the body does not decode. For a task this worker does not know they are
// all null, as Celery has no request then.
func (w *Worker) describe(r *codec.Result, m *codec.Message) {
	r.Extended = true
	if w.app.lookup(m.Task) == nil {
		r.Retries = -1
		return
	}
	r.Name, r.Worker, r.Retries, r.Queue = m.Task, w.hostname, m.Retries, m.RoutingKey
	if body, err := m.BodyJSON(0); err == nil {
		if args, kwargs, _, err := codec.SplitJSONBody(body); err == nil {
			r.Args, r.Kwargs = args, kwargs
		}
	}
}

// storeTimeLimitExceeded records m as FAILURE TimeLimitExceeded(hard), the
// limit in seconds as a number, as billiard raises it: exc_message [1.5].
func (w *Worker) storeTimeLimitExceeded(m *codec.Message, hard time.Duration) {
	if w.app.backend == nil || m.IgnoreResult {
		return
	}
	args := strconv.AppendFloat([]byte{'['}, hard.Seconds(), 'g', -1, 64)
	w.storeExceptionJSON(m, codec.StateFailure,
		codec.AppendExceptionJSONRaw(nil, "TimeLimitExceeded", "billiard.exceptions", append(args, ']')))
}

// storeWith stores r using the slot's buffer.
func (w *Worker) storeWith(st *slotState, r *codec.Result) {
	if err := w.storeResult(contextBackground, r, st); err != nil {
		w.app.errorf("worker: store result", "id", string(r.TaskID), "err", err)
	}
}

// storeResult encodes and stores r.
func (w *Worker) storeResult(ctx context.Context, r *codec.Result, st *slotState) error {
	b := w.app.backend
	if b == nil {
		return nil
	}
	var buf []byte
	if st != nil {
		buf = st.buf[len(st.buf):] // after anything r aliases in st.buf
	}
	if st != nil && r.State != codec.StateStarted && len(st.children) > 0 {
		// The run is over or being retried: no send adds to the list now.
		r.Children = st.children
	}
	if w.app.cfg.ResultExtended && st != nil && st.task.msg != nil {
		t := &st.task
		r.Extended = true
		r.Name, r.Args, r.Kwargs = t.msg.Task, t.args, t.kwargs
		r.Worker = w.hostname
		r.Retries, r.Queue = t.Retries, t.msg.RoutingKey
	}
	buf = codec.AppendResultJSON(buf, r)
	if st == nil {
		return b.StoreResults(ctx, transport.ResultRecord{TaskID: r.TaskID, Data: buf})
	}
	st.stored[0] = transport.ResultRecord{TaskID: r.TaskID, Data: buf}
	err := b.StoreResults(ctx, st.stored[:]...)
	st.stored[0] = transport.ResultRecord{} // holds no views past the call
	if cap(buf) > cap(st.buf) {
		st.buf = buf[:0]
	}
	return err
}

// collect queues m's acknowledgement.
func (st *slotState) collect(m *codec.Message) {
	st.pending = append(st.pending, m)
}

// ackWatchEvery is how often a worker looks for tasks that have run long
// with their early acknowledgement unsent (see watchAcks).
const ackWatchEvery = 100 * time.Millisecond

// watchAcks sends, every ackWatchEvery until ctx is done, the collected
// acknowledgements of each executor whose task was already running at
// the previous look. Executors send theirs between tasks (afterTask,
// idle), so without this a task that runs for an hour would hold its own
// early acknowledgement, and those collected before it, for the hour:
// long enough for Redis to deliver it again (visibility_timeout) or for
// RabbitMQ to close the channel (consumer_timeout, 30 minutes by
// default), the redelivery an early acknowledgement is there to prevent.
// Celery acknowledges before the task starts; here a task that runs
// longer than 2 x ackWatchEvery is acknowledged while it runs.
//
// The prefork pool's tasks run in other processes; its executor queues the
// early acknowledgement of each task a child starts, and this sends them.
func (w *Worker) watchAcks(ctx context.Context) {
	tick := time.NewTicker(ackWatchEvery)
	defer tick.Stop()
	prefork, _ := w.exec.(*preforkExecutor)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.slots.Range(func(k, _ any) bool {
			k.(*slotState).ackLongRun(w)
			return true
		})
		if prefork != nil {
			prefork.ackStarted()
		}
	}
}

// ackLongRun sends st's collected acknowledgements if the task it runs
// was running at the previous look too. The executor touches them only
// between its runs, and a visit finds a run only while the executor is
// inside it (see slotState), which endRun waits for.
func (st *slotState) ackLongRun(w *Worker) {
	run := st.visit()
	defer st.leave()
	if run == 0 || st.watched != run {
		st.watched = run
		return
	}
	if len(st.pending) == 0 {
		return
	}
	if err := w.consumer.Ack(st.pending...); err != nil {
		w.app.warnf("worker: ack", "n", len(st.pending), "err", err)
	}
	clear(st.pending)
	st.pending = st.pending[:0]
}

// afterTask sends acknowledgements when ackBatch are pending, or when the
// oldest has waited ackDelay. A clock read costs 40 ns on the 2-core VMs
// measured, a quarter of what a no-op task costs in all, so the age is
// looked at only every few tasks, as many as the pace of the tasks since
// the last flush allows: about twice per ackDelay, at least every
// maxAgeEvery tasks. An executor that runs out of work flushes on its own
// (idle), so a busy stream of short tasks reads the clock once per flush
// and no more. (It
// read it every fourth task: BenchmarkEngineMemoryNoop c=2 run on one
// processor, which counts work without cross-core effects, x0.97 ns/task,
// 9 interleaved runs.)
func (w *Worker) afterTask(st *slotState) {
	st.unsent++
	if len(st.release) >= ackBatch {
		w.flushSlot(st)
		return
	}
	if len(st.pending) == 0 || st.unsent < st.ageAt {
		return
	}
	now := ratelimit.Now()
	if now-st.flushed >= int64(ackDelay) {
		w.flushSlot(st)
		return
	}
	st.ageAt = st.unsent + st.ageEvery(now)
	st.lookedAt = now
}

// maxAgeEvery bounds how many tasks pass between two looks at the age of
// pending acknowledgements: when tasks turn slow after a run of short
// ones, an ack waits at most ackDelay plus this many of the slow tasks
// (four before the looks followed the pace). 16 measured no faster than 8
// (c=2 on one processor, 13 interleaved runs).
const maxAgeEvery = 8

// ageEvery returns how many tasks to run before the next look at the
// acknowledgements' age: the tasks since the last flush took
// (now-st.flushed)/st.unsent each; at that pace, half of ackDelay.
func (st *slotState) ageEvery(now int64) uint {
	per := max((now-st.flushed)/int64(st.unsent), 1)
	return uint(min(max(int64(ackDelay)/2/per, 1), maxAgeEvery))
}

// flush is the solo and prefork pools' idle hook: send what is pending.
func (w *Worker) flush(s *pool.Slot) { w.flushSlot(s.State.(*slotState)) }

// idle is the goroutine pool's idle hook: send what is pending, then poll
// the broker when it can be polled.
func (w *Worker) idle(s *pool.Slot) {
	st := s.State.(*slotState)
	w.flushSlot(st)
	if w.poller != nil {
		w.poll(st)
	}
}

func (w *Worker) flushSlot(st *slotState) {
	// The monotonic clock alone: time.Now reads the wall clock too, and
	// costs twice as much (47 against 25 ns here). A reading afterTask
	// took after the last task, with none started since, is as good: an
	// executor whose prefetch share is the look interval (8 tasks at
	// concurrency 2) looks at the clock after its last task and flushes
	// just after, as it runs out of work (BenchmarkEngineMemoryNoop c=2
	// on one processor: 200-210 -> 196-204 ns/task, 10 interleaved runs).
	now := st.lookedAt
	if now == 0 {
		now = ratelimit.Now()
	}
	st.lookedAt = 0
	st.ageAt = 1
	if st.unsent > 0 {
		st.ageAt = st.ageEvery(now)
	}
	st.flushed, st.unsent = now, 0
	w.addSucceeded(st)
	if len(st.pending) > 0 {
		if err := w.consumer.Ack(st.pending...); err != nil {
			w.app.warnf("worker: ack", "n", len(st.pending), "err", err)
		}
		clear(st.pending)
		st.pending = st.pending[:0]
	}
	codec.ReleaseMessages(st.release)
	clear(st.release)
	st.release = st.release[:0]
}

// addSucceeded adds the successes st counted to the worker's stats.
func (w *Worker) addSucceeded(st *slotState) {
	if st.succeeded > 0 {
		w.stats.Succeeded.Add(st.succeeded)
		st.succeeded = 0
	}
}

// soloExecutor adapts pool.Solo to executor.
type soloExecutor struct{ *pool.Solo[job] }

func (soloExecutor) Stop() []job { return nil }

// Abandon does nothing: the solo pool runs tasks on the consumer goroutine,
// which cannot be replaced (Celery's solo pool enforces no time limits).
func (soloExecutor) Abandon(*pool.Slot) {}

// ErrSoloPool: the solo pool has one slot and cannot be resized.
var ErrSoloPool = errors.New("engine: the solo pool cannot be resized")

func (soloExecutor) Resize(int) error { return ErrSoloPool }
func (soloExecutor) Size() int        { return 1 }
func (soloExecutor) Each(func(job))   {}
