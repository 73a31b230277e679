package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/pool"
	"github.com/celerity-go/celerity/pool/prefork"
	"github.com/celerity-go/celerity/ratelimit"
	"github.com/celerity-go/celerity/timelimit"
	"github.com/celerity-go/celerity/transport"
)

// WorkerConfig configures one worker; zero fields take the App's Config.
type WorkerConfig struct {
	// Queues to consume (default: the app's task_default_queue).
	Queues []string
	// Concurrency is the number of tasks run at once (worker_concurrency).
	Concurrency int
	// PrefetchMultiplier is worker_prefetch_multiplier.
	PrefetchMultiplier int
	// Pool is "goroutine" or "solo" (worker_pool).
	Pool string
	// MaxTasksPerChild is worker_max_tasks_per_child.
	MaxTasksPerChild int
	// ShutdownTimeout bounds the warm shutdown (worker_shutdown_timeout).
	ShutdownTimeout time.Duration
	// MaxMemoryPerChild (KiB of resident memory) recycles a prefork child
	// after the task during which it grew past it
	// (worker_max_memory_per_child); 0 = never. Prefork pool only.
	MaxMemoryPerChild int64
	// PreforkCommand starts a prefork child; default: this program again
	// with the same arguments (prefork.EnvChild tells it to serve tasks).
	PreforkCommand func() *exec.Cmd
}

// ackBatch is how many acknowledgements an executor collects before it
// sends them; it also sends them whenever it runs out of work.
const ackBatch = 32

// ackDelay is how long an executor that stays busy may sit on collected
// acknowledgements before sending them.
const ackDelay = 5 * time.Millisecond

// Worker consumes task messages and runs them. Create it with App.Worker
// and start it with Run.
//
// Shutdown order: stop fetching; give back (requeue) prefetched tasks that
// did not start; wait for running tasks up to ShutdownTimeout (warm), then
// cancel their contexts (cold) and wait up to coldGrace more; requeue held
// ETA tasks; send pending acknowledgements; close the consumer (which
// requeues anything still unacknowledged). With the solo pool a task runs
// on the fetch loop's goroutine, and Run returns only once it has.
type Worker struct {
	app      *App
	cfg      WorkerConfig
	prefetch int
	hostname []byte // the node name, for extended result records
	accept   serializer.Accept

	consumer transport.Consumer
	queuesMu sync.Mutex // serialises queue changes; guards queues, and consumer while Run starts
	queues   []string   // the queues consumed now (add_consumer / cancel_consumer change them)
	exec     executor
	eta      *etaQueue
	// running is set once Run has made exec and eta: the introspection
	// methods, which other goroutines call, read them only after it.
	running  atomic.Bool
	limits   ratelimit.Limiter
	deadline *timelimit.Tracker

	baseCtx    context.Context // cancelled on cold shutdown
	coldCancel context.CancelFunc
	stop       context.CancelFunc // ends Run (warm shutdown)
	slots      sync.Map           // *slotState -> struct{}
	held       atomic.Int64       // ETA/rate-limited tasks held (raise prefetch)

	stats WorkerStats

	// poller is the consumer when it can be polled and the pool is the
	// goroutine pool: idle executors then take work from the broker
	// themselves (see poll). fetchMu serialises taking messages and
	// submitting them, so batches reach the pool in the order they left
	// the broker; polling is true while the fetch loop runs.
	poller  transport.Poller
	fetchMu sync.Mutex
	polling bool
}

// WorkerStats counts what a worker did. Read it with Worker.Stats.
// Successes are counted in each executor and added when it sends its
// acknowledgements: at most a few tasks, or ackDelay, after they ran, and
// at once when the executor runs out of work.
type WorkerStats struct {
	Received, Succeeded, Failed, Retried, Revoked, Rejected atomic.Int64
}

// executor is the pool the worker hands jobs to.
type executor interface {
	Submit(jobs ...job) error
	Stop() []job
	Abandon(s *pool.Slot)
	Resize(n int) error
	Size() int
	Each(fn func(job))
}

// job is one task ready to run.
type job struct {
	m   *codec.Message
	def *taskDef
	// admitted: the job holds its rate-limit token (it must not ask again).
	admitted bool
}

// Worker returns a worker of this app. Run starts it.
func (a *App) Worker(cfg WorkerConfig) (*Worker, error) {
	c := a.cfg
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{c.TaskDefaultQueue}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = c.WorkerConcurrency
	}
	if cfg.PrefetchMultiplier == 0 {
		cfg.PrefetchMultiplier = c.WorkerPrefetchMultiplier
	}
	if cfg.Pool == "" {
		cfg.Pool = c.WorkerPool
	}
	if cfg.MaxTasksPerChild == 0 {
		cfg.MaxTasksPerChild = c.WorkerMaxTasksPerChild
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = c.WorkerShutdownTimeout
	}
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("engine: worker concurrency %d < 1", cfg.Concurrency)
	}
	switch cfg.Pool {
	case "goroutine", "solo", "prefork":
	default:
		return nil, fmt.Errorf("engine: worker pool %q is not goroutine, solo or prefork", cfg.Pool)
	}
	if cfg.MaxMemoryPerChild == 0 {
		cfg.MaxMemoryPerChild = c.WorkerMaxMemoryPerChild
	}
	accept, err := serializer.NewAccept(c.AcceptContent...)
	if err != nil {
		return nil, fmt.Errorf("engine: config accept_content: %w", err)
	}
	var queues []string // cfg.Queues without repeats
	for _, q := range cfg.Queues {
		if !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	w := &Worker{app: a, cfg: cfg, queues: queues, accept: accept, prefetch: cfg.Concurrency * cfg.PrefetchMultiplier,
		hostname: []byte(c.Hostname), deadline: timelimit.New(10 * time.Millisecond)}
	for _, def := range *a.tasks.Load() {
		if def.opts.rateLimit == "" {
			continue
		}
		if err := w.SetRateLimit(def.name, def.opts.rateLimit); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// SetRateLimit changes a task's rate limit at runtime (Celery's rate_limit
// control command): a Celery rate string, "" or "0" for none.
func (w *Worker) SetRateLimit(task, rate string) error {
	r, err := ratelimit.Parse(rate)
	if err != nil {
		return fmt.Errorf("engine: rate limit of %s: %w", task, err)
	}
	w.limits.Set(task, r)
	return nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() *WorkerStats { return &w.stats }

// Hostname returns the worker's node name.
func (w *Worker) Hostname() string { return w.app.cfg.Hostname }

// Run consumes and runs tasks until ctx is cancelled (warm shutdown, see
// Worker), then returns. A second Run is an error. In a prefork child
// (prefork.IsChild), Run serves the tasks its parent sends and then exits
// the process: it does not return.
func (w *Worker) Run(ctx context.Context) error {
	if prefork.IsChild() {
		w.serveChild()
	}
	if w.consumer != nil {
		return errors.New("engine: worker already ran")
	}
	ctx, w.stop = context.WithCancel(ctx)
	defer w.stop()
	w.queuesMu.Lock()
	consumer, err := w.app.broker.Consume(ctx, w.queues, w.prefetch)
	w.consumer = consumer
	queues := slices.Clone(w.queues)
	w.queuesMu.Unlock()
	if err != nil {
		return fmt.Errorf("engine: consume %v: %w", queues, err)
	}
	w.baseCtx, w.coldCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer w.coldCancel()
	switch w.cfg.Pool {
	case "solo":
		w.exec = soloExecutor{pool.NewSolo(w.runJob, w.flush, w.initSlot)}
	case "prefork":
		x, err := w.newPreforkExecutor(ctx)
		if err != nil {
			w.consumer.Close()
			return err
		}
		w.exec = x
	default:
		w.poller, _ = consumer.(transport.Poller)
		p, err := pool.NewGoroutine(pool.Config{
			Concurrency: w.cfg.Concurrency, MaxTasksPerChild: w.cfg.MaxTasksPerChild,
			QueueSize: 2 * w.prefetch, Logger: w.app.log,
		}, w.runJob, w.idle, w.initSlot)
		if err != nil {
			w.consumer.Close()
			return err
		}
		w.exec = p
	}
	w.deadline.Start()
	defer w.deadline.Stop()
	w.eta = newETAQueue()
	etaDone := make(chan struct{})
	etaCtx, stopETA := context.WithCancel(context.Background())
	go func() { defer close(etaDone); w.eta.run(etaCtx, w) }()

	w.running.Store(true)
	w.app.workers.Store(w, struct{}{})
	defer w.app.workers.Delete(w)
	if h := w.app.hooks.WorkerReady; h != nil {
		h(w)
	}
	w.app.log.Info("worker ready", "hostname", w.app.cfg.Hostname, "queues", queues,
		"concurrency", w.cfg.Concurrency, "pool", w.cfg.Pool)

	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); w.watchAcks(watchCtx) }()

	runErr := w.consume(ctx)

	// Warm shutdown.
	stopETA()
	<-etaDone
	w.shutdown(func() { stopWatch(); <-watchDone })
	if h := w.app.hooks.WorkerShutdown; h != nil {
		h(w)
	}
	if runErr != nil && ctx.Err() == nil {
		return runErr
	}
	return nil
}

// AddQueue makes the worker consume queue as well (Celery's add_consumer
// control command), at once if it runs, else from the start of Run. A
// queue already consumed is left as it is.
func (w *Worker) AddQueue(ctx context.Context, queue string) error {
	if queue == "" {
		return errors.New("engine: add queue: empty queue name")
	}
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	if slices.Contains(w.queues, queue) {
		return nil
	}
	if w.consumer != nil {
		if err := w.consumer.AddQueue(ctx, queue); err != nil {
			return fmt.Errorf("engine: add queue %s: %w", queue, err)
		}
	}
	w.queues = append(w.queues, queue)
	w.app.log.Info("worker: started consuming", "queue", queue)
	return nil
}

// CancelQueue stops the worker consuming queue (Celery's cancel_consumer).
// Tasks already received from it still run and are acknowledged as usual;
// a worker whose queues are all cancelled waits for an AddQueue.
func (w *Worker) CancelQueue(ctx context.Context, queue string) error {
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	i := slices.Index(w.queues, queue)
	if i < 0 {
		return nil
	}
	if w.consumer != nil {
		if err := w.consumer.CancelQueue(ctx, queue); err != nil {
			return fmt.Errorf("engine: cancel queue %s: %w", queue, err)
		}
	}
	w.queues = slices.Delete(w.queues, i, i+1)
	w.app.log.Info("worker: no longer consuming", "queue", queue)
	return nil
}

// Stop starts a warm shutdown, as cancelling Run's context does (Celery's
// shutdown control command).
func (w *Worker) Stop() {
	if w.stop != nil {
		w.stop()
	}
}

// Terminate makes a running warm shutdown cold: running tasks' contexts
// are cancelled at once.
func (w *Worker) Terminate() {
	if w.coldCancel != nil {
		w.coldCancel()
	}
}

// consume is the fetch loop. With a pollable consumer it waits for
// messages and takes them under fetchMu, as polling executors do.
func (w *Worker) consume(ctx context.Context) error {
	buf := make([]*codec.Message, w.fetchSize())
	ready := make([]job, 0, len(buf))
	w.fetchMu.Lock()
	w.polling = w.poller != nil // executors may poll from now on
	w.fetchMu.Unlock()
	defer func() {
		w.fetchMu.Lock()
		w.polling = false
		w.fetchMu.Unlock()
	}()
	var backoff time.Duration
	for ctx.Err() == nil {
		var err error
		if w.poller != nil {
			if err = w.poller.Wait(ctx); err == nil {
				w.fetchMu.Lock()
				var n int
				if n, err = w.poller.Poll(buf); n > 0 {
					ready = w.dispatch(buf[:n], ready)
				}
				w.fetchMu.Unlock()
			}
		} else {
			var n int
			if n, err = w.consumer.Fetch(ctx, buf); err == nil {
				ready = w.dispatch(buf[:n], ready)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A transport error: transports reconnect on their own; wait
			// a little so that a dead broker does not spin this loop.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			w.app.warnf("worker: fetch failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
	}
	return nil
}

// fetchSize is the number of messages taken from the consumer at once.
func (w *Worker) fetchSize() int { return min(max(w.prefetch, 1), 256) }

// dispatch routes fetched messages, hands the runnable ones to the pool
// and clears msgs. ready is scratch space; dispatch returns it for reuse.
func (w *Worker) dispatch(msgs []*codec.Message, ready []job) []job {
	var bt batch
	ready = ready[:0]
	w.stats.Received.Add(int64(len(msgs)))
	for _, m := range msgs {
		if j, ok := w.route(m, &bt); ok {
			ready = append(ready, j)
		}
	}
	clear(msgs)
	if len(ready) > 0 {
		if err := w.exec.Submit(ready...); err != nil { // only after Stop
			w.requeue(ready)
		}
	}
	w.syncPrefetch()
	return ready
}

// poll is what an executor that ran out of work does before it waits:
// take what the broker has ready and dispatch it (the executor then runs
// the first job). Without it every batch took two goroutine hand-offs: the
// fetch loop, woken by the executors' acknowledgements, and back to an
// executor woken by the pool (BenchmarkEngineMemoryNoop, c=2: 350 -> 230
// ns/task, median of 7 interleaved runs). poll gives way to the fetch loop
// or another executor already at it.
func (w *Worker) poll(st *slotState) {
	if !w.fetchMu.TryLock() {
		return
	}
	defer w.fetchMu.Unlock()
	if !w.polling {
		return
	}
	if st.fetched == nil {
		st.fetched = make([]*codec.Message, w.fetchSize())
	}
	// An error is the fetch loop's to report.
	if n, _ := w.poller.Poll(st.fetched); n > 0 {
		st.ready = w.dispatch(st.fetched[:n], st.ready)
	}
}

// batch is what routing a batch of messages looks up once: the clock,
// read only if a message needs it (an ETA, an expiry, a rate limit), since
// time.Now costs about as much as routing a message (47 ns on the 2-core
// VMs measured); and the task last found in the registry, since a batch
// is mostly one task's messages and the registry's map lookup (hashing
// the name) cost 16 of the 190 ns per task of BenchmarkEngineMemoryNoop at
// c=2.
type batch struct {
	t   time.Time
	def *taskDef
	// accepted is the last content type accept_content let through (a
	// view): the memory broker's messages share the producer's constant,
	// so a batch of them checks it once (the check was 7 of the worker's
	// 147 CPU-ns per task of BenchmarkEngineMemoryNoop at c=2).
	accepted []byte
}

// accept checks ct against accept_content unless ct is the very view
// accepted last: the same bytes in memory, which two messages fetched
// together can only share if they hold the same content type.
func (b *batch) accept(w *Worker, ct []byte) error {
	if len(ct) > 0 && len(ct) == len(b.accepted) && unsafe.SliceData(ct) == unsafe.SliceData(b.accepted) {
		return nil
	}
	if err := w.accept.Check(ct); err != nil {
		return err
	}
	b.accepted = ct
	return nil
}

func (b *batch) now() time.Time {
	if b.t.IsZero() {
		b.t = time.Now()
	}
	return b.t
}

// lookup returns the registered task named name, or nil.
func (b *batch) lookup(a *App, name []byte) *taskDef {
	if b.def == nil || b.def.name != string(name) {
		b.def = a.lookup(name)
	}
	return b.def
}

// route decides what happens to a fetched message: run now (returns the
// job), hold for its ETA or rate limit, or answer it at once.
func (w *Worker) route(m *codec.Message, bt *batch) (job, bool) {
	def := bt.lookup(w.app, m.Task)
	if def == nil {
		w.storeFailure(m, "NotRegistered", "celery.exceptions", string(m.Task))
		w.reject(m, false, fmt.Errorf("%w: %q", ErrNotRegistered, m.Task))
		return job{}, false
	}
	if err := bt.accept(w, m.ContentType); err != nil {
		w.reject(m, false, err)
		return job{}, false
	}
	if h := w.app.hooks.TaskReceived; h != nil {
		h(m)
	}
	j := job{m: m, def: def}
	if w.app.revoked.has(m.ID) {
		w.discard(m, "revoked")
		return job{}, false
	}
	if !m.Expires.IsZero() && bt.now().After(m.Expires) {
		w.discard(m, "expired")
		return job{}, false
	}
	if !m.ETA.IsZero() && m.ETA.After(bt.now()) {
		w.hold(j, m.ETA)
		return job{}, false
	}
	return w.admit(j, bt)
}

// admit takes j's rate-limit token: run now (true), or hold j until the
// token is due. A held task occupies no pool slot and delays no other task
// type.
func (w *Worker) admit(j job, bt *batch) (job, bool) {
	if j.admitted {
		return j, true
	}
	j.admitted = true
	b := w.limits.Find(unsafeconv.String(j.m.Task))
	if b == nil {
		return j, true
	}
	// The batch's time stands for the clock: a clock read per message
	// costs more than the rest of admit.
	now := bt.now()
	if wait := b.Reserve(ratelimit.At(now)); wait > 0 {
		w.hold(j, now.Add(wait))
		return job{}, false
	}
	return j, true
}

// hold keeps j in the ETA queue until due, raising the prefetch bound.
func (w *Worker) hold(j job, due time.Time) {
	w.held.Add(1)
	w.eta.push(j, due)
}

// release hands held jobs that came due to the pool.
func (w *Worker) release(jobs []job, now time.Time) {
	bt := batch{t: now}
	ready := jobs[:0]
	for _, j := range jobs {
		w.held.Add(-1)
		if w.app.revoked.has(j.m.ID) {
			w.discard(j.m, "revoked")
			continue
		}
		if !j.m.Expires.IsZero() && now.After(j.m.Expires) {
			w.discard(j.m, "expired")
			continue
		}
		if j, ok := w.admit(j, &bt); ok {
			ready = append(ready, j)
		}
	}
	if len(ready) > 0 {
		if err := w.exec.Submit(ready...); err != nil {
			w.requeue(ready)
		}
	}
	w.syncPrefetch()
}

// syncPrefetch keeps the consumer's bound at prefetch + held tasks.
func (w *Worker) syncPrefetch() {
	want := w.prefetch + int(w.held.Load())
	if w.prefetch == 0 {
		want = 0
	}
	if w.eta.setPrefetch(want) {
		if err := w.consumer.SetPrefetch(want); err != nil {
			w.app.warnf("worker: set prefetch", "err", err)
		}
	}
}

// discard acks a revoked or expired message and records it REVOKED.
func (w *Worker) discard(m *codec.Message, reason string) {
	if err := w.consumer.Ack(m); err != nil {
		w.app.warnf("worker: ack", "err", err)
	}
	w.revokedUnrun(m, reason)
	codec.ReleaseMessage(m)
}

// revokedUnrun records m, a task that will not run, as REVOKED for reason
// ("revoked", "expired"), as Celery's worker does.
func (w *Worker) revokedUnrun(m *codec.Message, reason string) {
	w.stats.Revoked.Add(1)
	w.storeException(m, codec.StateRevoked, "TaskRevokedError", "celery.exceptions", reason)
	if h := w.app.hooks.TaskRevoked; h != nil {
		h(m.ID, reason)
	}
	w.app.log.Info("task discarded", "id", string(m.ID), "reason", reason)
}

// reject answers a message the worker will not run.
func (w *Worker) reject(m *codec.Message, requeue bool, reason error) {
	w.stats.Rejected.Add(1)
	w.app.errorf("worker: rejecting message", "task", string(m.Task), "id", string(m.ID), "requeue", requeue, "reason", reason)
	if h := w.app.hooks.TaskRejected; h != nil {
		h(m, reason)
	}
	if err := w.consumer.Reject(requeue, m); err != nil {
		w.app.warnf("worker: reject", "err", err)
	}
	codec.ReleaseMessage(m)
}

// requeue gives jobs back to the broker (shutdown paths).
func (w *Worker) requeue(jobs []job) {
	for _, j := range jobs {
		if err := w.consumer.Reject(true, j.m); err != nil {
			w.app.warnf("worker: requeue", "id", string(j.m.ID), "err", err)
		}
		codec.ReleaseMessage(j.m)
	}
}

// coldGrace is how long a cold shutdown waits for running tasks to return
// once their contexts are cancelled. Go cannot stop a goroutine that
// ignores its context: after coldGrace the worker leaves such tasks
// running, closes its consumer, so that the broker delivers again what
// they had not acknowledged, and Run returns (the process exiting next
// ends them), where Celery's cold shutdown kills them.
const coldGrace = 2 * time.Second

// awaitCold waits up to coldGrace for the executors to stop (stopped
// gives the jobs they never started) once running tasks are cancelled.
func (w *Worker) awaitCold(stopped <-chan []job) []job {
	select {
	case left := <-stopped:
		return left
	case <-time.After(coldGrace):
		w.app.errorf("worker: cold shutdown: running tasks ignore their cancelled context; leaving them behind",
			"waited", coldGrace)
		return nil // their messages, and the jobs not started, go back when the consumer closes
	}
}

// shutdown is the warm shutdown after the fetch loop ended. stopWatch
// stops watchAcks, once no task runs, before the consumer is closed.
func (w *Worker) shutdown(stopWatch func()) {
	stopped := make(chan []job, 1)
	go func() { stopped <- w.exec.Stop() }()
	var left []job
	select {
	case left = <-stopped:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.app.warnf("worker: warm shutdown timed out; cancelling running tasks", "timeout", w.cfg.ShutdownTimeout)
		w.coldCancel()
		left = w.awaitCold(stopped)
	case <-w.baseCtx.Done(): // Terminate
		left = w.awaitCold(stopped)
	}
	stopWatch()
	w.requeue(left)
	w.requeue(w.eta.drain())
	if err := w.consumer.Close(); err != nil {
		w.app.warnf("worker: close consumer", "err", err)
	}
}
