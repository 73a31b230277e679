package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/pool"
	"github.com/celerity-go/celerity/pool/prefork"
	"github.com/celerity-go/celerity/timelimit"
)

// The prefork pool runs tasks in child processes: copies of the worker's
// own binary, started with prefork.EnvChild set, in which Worker.Run serves
// tasks instead of consuming (the program registers the same tasks before
// it reaches Run, so the child knows them). It is the pool that really
// kills a task at its hard time limit and really frees what a task leaked
// (max tasks / max memory per child).
//
// Parent and child exchange the task as the kombu envelope
// (codec.AppendRedisEnvelope) and the outcome as a small JSON document
// (childOutcome). The parent does everything else as for the goroutine
// pool: routing, hooks, results, retries, canvas, acknowledgements.
//
// A task acknowledged late is acknowledged when the child's reply (or its
// death) comes back. One acknowledged early is acknowledged once the pool
// reports that a child started it (prefork.Request.Started), at the ack
// watcher's next look (see ackStarted), or with its reply if that comes
// first: never while the pool may still hand it back unstarted.

// childOutcome is what a child reports for one task.
type childOutcome struct {
	Result json.RawMessage `json:"result,omitempty"` // SUCCESS: the return value
	OK     bool            `json:"ok,omitempty"`
	Exc    *childExc       `json:"exc,omitempty"` // FAILURE, or the reason of a retry
	Retry  *childRetry     `json:"retry,omitempty"`
	Reject *childReject    `json:"reject,omitempty"`
	Ignore bool            `json:"ignore,omitempty"`
	// Children lists what the handler sent, as its result's "children"
	// JSON, which the parent stores. A string: Marshal would compact a
	// RawMessage, and the record keeps Celery's separators.
	Children string `json:"children,omitempty"`
}

type childExc struct {
	Type      string   `json:"type"`
	Module    string   `json:"module"`
	Args      []string `json:"args"`
	Traceback string   `json:"traceback,omitempty"`
}

type childRetry struct {
	Countdown     time.Duration `json:"countdown"`
	ETA           time.Time     `json:"eta"`
	MaxRetries    int           `json:"max_retries"`
	HasMaxRetries bool          `json:"has_max_retries"`
}

type childReject struct {
	Reason  string `json:"reason"`
	Requeue bool   `json:"requeue"`
}

// encodeOutcome turns a handler's return, and the children it sent, into
// a childOutcome.
func encodeOutcome(dst []byte, t *Task, err error, children []byte) []byte {
	o := childOutcome{Children: string(children)}
	var retry *RetryError
	var reject *RejectError
	switch {
	case err == nil:
		o.OK, o.Result = true, t.Result()
	case errors.Is(err, ErrIgnore):
		o.Ignore = true
	case errors.As(err, &reject):
		o.Reject = &childReject{Reason: reject.Reason, Requeue: reject.Requeue}
	case errors.As(err, &retry):
		o.Retry = &childRetry{Countdown: retry.Countdown, ETA: retry.ETA, MaxRetries: retry.MaxRetries, HasMaxRetries: retry.HasMaxRetries}
		if retry.Err != nil {
			o.Exc = excOf(retry.Err)
		}
	default:
		o.Exc = excOf(err)
	}
	b, mErr := json.Marshal(&o)
	if mErr != nil {
		b, _ = json.Marshal(&childOutcome{Exc: &childExc{Type: "EncodeError", Module: "kombu.exceptions", Args: []string{mErr.Error()}}})
	}
	return append(dst, b...)
}

func excOf(err error) *childExc {
	typ, mod, args, tb := Exception(err)
	return &childExc{Type: typ, Module: mod, Args: args, Traceback: tb}
}

// decodeOutcome turns a child's reply back into the error value the
// handler returned (nil for success, with the result set on t), and puts
// the children the handler sent in st.
func decodeOutcome(raw []byte, t *Task, st *slotState) error {
	var o childOutcome
	if err := json.Unmarshal(raw, &o); err != nil {
		return &TaskError{Type: "WorkerLostError", Module: "billiard.exceptions", Args: []any{"undecodable reply from the child: " + err.Error()}}
	}
	st.children = append(emptiedChildren(st.children), o.Children...)
	exc := func() error {
		if o.Exc == nil {
			return nil
		}
		args := make([]any, len(o.Exc.Args))
		for i, a := range o.Exc.Args {
			args[i] = a
		}
		return &TaskError{Type: o.Exc.Type, Module: o.Exc.Module, Args: args, Traceback: o.Exc.Traceback}
	}
	switch {
	case o.OK:
		t.Return(o.Result)
		return nil
	case o.Ignore:
		return ErrIgnore
	case o.Reject != nil:
		return &RejectError{Reason: o.Reject.Reason, Requeue: o.Reject.Requeue}
	case o.Retry != nil:
		return &RetryError{Countdown: o.Retry.Countdown, ETA: o.Retry.ETA, Err: exc(),
			MaxRetries: o.Retry.MaxRetries, HasMaxRetries: o.Retry.HasMaxRetries}
	default:
		if e := exc(); e != nil {
			return e
		}
		return &TaskError{Type: "WorkerLostError", Module: "billiard.exceptions", Args: []any{"empty reply from the child"}}
	}
}

// serveChild is Worker.Run in a prefork child: run the tasks the parent
// sends until it closes the pipe, then exit the process.
func (w *Worker) serveChild() {
	m := codec.AcquireMessage()
	t := &Task{}
	// The child runs one task at a time; its slot only tells tasks sent
	// from inside a handler which task they come from (inherit).
	st := &slotState{w: w}
	base := &taskContext{Context: context.Background(), st: st}
	err := prefork.ServeChild(func(dst, payload []byte) []byte {
		m.Reset()
		if err := codec.DecodeRedisEnvelope(payload, m); err != nil {
			return encodeOutcome(dst, t, &TaskError{Type: "DecodeError", Module: "kombu.exceptions", Args: []any{err.Error()}}, nil)
		}
		def := w.app.lookup(m.Task)
		if def == nil {
			return encodeOutcome(dst, t, &TaskError{Type: "NotRegistered", Module: "celery.exceptions", Args: []any{string(m.Task)}}, nil)
		}
		t.reset(w, def, m)
		if err := w.decodeArgs(t); err != nil {
			return encodeOutcome(dst, t, &TaskError{Type: "DecodeError", Module: "kombu.exceptions", Args: []any{err.Error()}}, nil)
		}
		var ctx context.Context = base
		if soft := w.timeLimits(def, m).Soft; soft > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, soft, timelimit.ErrSoftTimeLimitExceeded)
			defer cancel()
		}
		// What the handler sends is listed here, reported in the reply
		// and stored by the parent with the result.
		st.running, st.root, st.children = m.ID, rootOf(t), emptiedChildren(st.children)
		st.run++
		st.startRun()
		err := call(def.handler, ctx, t)
		st.endRun()
		st.running, st.root = nil, ""
		children := st.children
		if err != nil && errors.Is(context.Cause(ctx), timelimit.ErrSoftTimeLimitExceeded) {
			err = &TaskError{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions", Args: []any{}}
		}
		return encodeOutcome(dst, t, err, children)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "celerity prefork child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// preforkJob is one task in flight in the prefork pool; pooled.
type preforkJob struct {
	x       *preforkExecutor
	j       job
	st      slotState
	buf     []byte
	done    func(prefork.Result) // bound once to finish
	started func()               // bound once to onStarted
	skip    func() bool          // bound once to revoked
	early   earlyAck             // under x.mu
}

// earlyAck is where a prefork task's early acknowledgement stands.
type earlyAck uint8

const (
	earlyNone    earlyAck = iota // not started yet, or acknowledged late
	earlyQueued                  // started: ackStarted sends it next
	earlySent                    // sent by ackStarted
	earlySettled                 // the task's outcome came first
)

// preforkExecutor adapts prefork.Pool to executor.
type preforkExecutor struct {
	w    *Worker
	pool *prefork.Pool
	jobs sync.Pool

	mu       sync.Mutex
	inflight map[*preforkJob]struct{} // and their early fields

	// ackStarted sends the early acknowledgements of the inflight jobs a
	// child started, holding sendMu while it does.
	sendMu sync.Mutex
	acks   []*codec.Message // ackStarted's batch, under sendMu
}

// newPreforkExecutor starts the children.
func (w *Worker) newPreforkExecutor(ctx context.Context) (*preforkExecutor, error) {
	cmd := w.cfg.PreforkCommand
	if cmd == nil {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("engine: prefork: %w", err)
		}
		args := os.Args[1:]
		cmd = func() *exec.Cmd { return exec.Command(exe, args...) }
	}
	p, err := prefork.New(prefork.Config{
		Procs: w.cfg.Concurrency, Command: cmd, MaxTasksPerChild: w.cfg.MaxTasksPerChild,
		MaxMemoryPerChild: w.cfg.MaxMemoryPerChild, Logger: w.app.log,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: prefork: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("engine: prefork: %w", err)
	}
	x := &preforkExecutor{w: w, pool: p, inflight: make(map[*preforkJob]struct{})}
	x.jobs.New = func() any {
		pj := &preforkJob{x: x}
		pj.st = slotState{w: w}
		pj.done = pj.finish
		pj.started = pj.onStarted
		pj.skip = pj.revoked
		return pj
	}
	return x, nil
}

// Submit prepares each task in the parent (arguments, STARTED, prerun
// hooks) and hands it to a child.
func (x *preforkExecutor) Submit(jobs ...job) error {
	w := x.w
	for _, j := range jobs {
		pj := x.jobs.Get().(*preforkJob)
		pj.j = j
		m, def := j.m, j.def
		pj.st.lateAck = w.acksLate(def)
		var started func() // acks early: as a child starts it (ackStarted)
		if !pj.st.lateAck {
			started = pj.started
		}
		t := &pj.st.task
		t.reset(w, def, m)
		if err := w.decodeArgs(t); err != nil {
			w.stats.Failed.Add(1)
			w.storeFailure(m, "DecodeError", "kombu.exceptions", err.Error())
			x.settle(pj, true) // failed for good, as on the other pools
			continue
		}
		if w.trackStarted(def) {
			w.storeStarted(&pj.st, m)
		}
		if h := w.app.hooks.TaskPrerun; h != nil {
			h(t)
		}
		pj.buf = codec.AppendRedisEnvelope(pj.buf[:0], m)
		x.mu.Lock()
		x.inflight[pj] = struct{}{}
		pj.early = earlyNone
		x.mu.Unlock()
		req := prefork.Request{Payload: pj.buf, HardLimit: w.timeLimits(def, m).Hard, Started: started, Skip: pj.skip}
		if err := x.pool.Submit(req, pj.done); err != nil {
			x.mu.Lock()
			delete(x.inflight, pj)
			x.mu.Unlock()
			x.requeue(pj)
			return err
		}
	}
	return nil
}

// finish is a child's answer for pj (called once, on a pool goroutine).
func (pj *preforkJob) finish(res prefork.Result) {
	x, w := pj.x, pj.x.w
	t := &pj.st.task
	x.mu.Lock()
	delete(x.inflight, pj)
	x.mu.Unlock()
	switch {
	case res.Err == nil:
		state := w.outcome(&pj.st, t, decodeOutcome(res.Payload, t, &pj.st))
		w.addSucceeded(&pj.st) // pj.st is the job's own: never flushed
		if h := w.app.hooks.TaskPostrun; h != nil {
			h(t, state)
		}
		x.settle(pj, state != codec.StateRejected)
	case errors.Is(res.Err, prefork.ErrStopped):
		x.requeue(pj) // never started
	case errors.Is(res.Err, prefork.ErrSkipped): // revoked while it waited for a child
		w.revokedUnrun(pj.j.m, "revoked")
		if h := w.app.hooks.TaskPostrun; h != nil {
			h(t, codec.StateRevoked) // its prerun ran as it was handed to the pool
		}
		x.settle(pj, true)
	case errors.Is(res.Err, prefork.ErrTimeLimitExceeded):
		w.stats.Failed.Add(1)
		w.app.errorf("worker: task exceeded its hard time limit; its child was killed", "task", t.Name, "id", t.ID)
		w.storeTimeLimitExceeded(pj.j.m, w.timeLimits(pj.j.def, pj.j.m).Hard)
		x.settle(pj, true)
	default: // the child died
		if w.app.cfg.TaskRejectOnWorkerLost && w.acksLate(pj.j.def) {
			w.app.warnf("worker: child lost; requeueing its task", "task", t.Name, "id", t.ID, "err", res.Err)
			x.requeue(pj)
			return
		}
		w.stats.Failed.Add(1)
		w.storeException(pj.j.m, codec.StateFailure, "WorkerLostError", "billiard.exceptions", res.Err.Error())
		x.settle(pj, true)
	}
}

// revoked reports whether pj's task was revoked while it waited for a
// child: the pool then drops it unsent (prefork.Request.Skip). It runs
// with the prefork pool's lock held.
func (pj *preforkJob) revoked() bool { return pj.x.w.app.revoked.has(pj.j.m.ID) }

// onStarted queues pj's early acknowledgement as a child starts it. It
// runs with the prefork pool's lock held (prefork.Request.Started).
func (pj *preforkJob) onStarted() {
	x := pj.x
	x.mu.Lock()
	if pj.early == earlyNone {
		pj.early = earlyQueued
	}
	x.mu.Unlock()
}

// ackStarted sends the early acknowledgements of the tasks children
// started since its last call. The worker's ack watcher calls it every
// ackWatchEvery (see watchAcks): a task acknowledged early is acknowledged
// at most that long after a child starts it, or as it ends if sooner,
// never only after an hour-long run. Celery's prefork pool acknowledges
// as a child accepts the task.
func (x *preforkExecutor) ackStarted() {
	x.sendMu.Lock()
	defer x.sendMu.Unlock()
	acks := x.acks[:0]
	x.mu.Lock()
	for pj := range x.inflight {
		if pj.early == earlyQueued {
			pj.early = earlySent
			acks = append(acks, pj.j.m)
		}
	}
	x.mu.Unlock()
	if len(acks) > 0 {
		if err := x.w.consumer.Ack(acks...); err != nil {
			x.w.app.warnf("worker: ack", "n", len(acks), "err", err)
		}
	}
	clear(acks)
	x.acks = acks[:0]
}

// settled marks pj's outcome as come and reports whether ackStarted sent
// its early acknowledgement; it waits until that send has returned, so
// that pj's message can be released.
func (x *preforkExecutor) settled(pj *preforkJob) (ackSent bool) {
	x.mu.Lock()
	early := pj.early
	pj.early = earlySettled
	x.mu.Unlock()
	if early == earlySent {
		x.sendMu.Lock()
		x.sendMu.Unlock()
	}
	return early == earlySent
}

// settle acknowledges (or not) and releases pj's message and pj. A task
// acknowledged early is acknowledged here if ackStarted has not done it,
// whatever ack says: as in Celery, its message was acknowledged before
// its outcome, a Reject's included.
func (x *preforkExecutor) settle(pj *preforkJob, ack bool) {
	if x.settled(pj) {
		ack = false
	} else if !pj.st.lateAck {
		ack = true
	}
	if ack {
		if err := x.w.consumer.Ack(pj.j.m); err != nil {
			x.w.app.warnf("worker: ack", "err", err)
		}
	}
	codec.ReleaseMessage(pj.j.m)
	x.put(pj)
}

// requeue gives pj's message back to the broker, unless it was
// acknowledged early already: then the task is dropped, as a task Celery
// acknowledged early is (at most once).
func (x *preforkExecutor) requeue(pj *preforkJob) {
	if x.settled(pj) {
		x.w.app.warnf("worker: not requeued: acknowledged early already", "id", string(pj.j.m.ID))
	} else if err := x.w.consumer.Reject(true, pj.j.m); err != nil {
		x.w.app.warnf("worker: requeue", "id", string(pj.j.m.ID), "err", err)
	}
	codec.ReleaseMessage(pj.j.m)
	x.put(pj)
}

func (x *preforkExecutor) put(pj *preforkJob) {
	pj.j = job{}
	pj.st.task = Task{result: pj.st.task.result[:0]}
	x.jobs.Put(pj)
}

// Stop stops the children: running tasks may finish until the shutdown
// timeout; tasks not started come back through finish and are requeued.
func (x *preforkExecutor) Stop() []job {
	ctx, cancel := context.WithTimeout(context.Background(), x.w.cfg.ShutdownTimeout)
	defer cancel()
	if err := x.pool.Stop(ctx); err != nil {
		x.w.app.warnf("worker: stopping the prefork pool", "err", err)
	}
	return nil
}

// Abandon does nothing: the prefork pool kills children itself.
func (x *preforkExecutor) Abandon(*pool.Slot) {}

func (x *preforkExecutor) Resize(n int) error { return x.pool.Resize(n) }
func (x *preforkExecutor) Size() int          { return x.pool.Size() }

// Each visits the tasks handed to children and not answered yet.
func (x *preforkExecutor) Each(fn func(job)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for pj := range x.inflight {
		fn(pj.j)
	}
}

// acksLate reports whether def's tasks are acknowledged after they ran.
func (w *Worker) acksLate(def *taskDef) bool {
	if def.opts.acksLate != nil {
		return *def.opts.acksLate
	}
	return w.app.cfg.TaskAcksLate
}
