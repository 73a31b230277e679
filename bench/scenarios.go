package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// Task names the harness registers (Python Celery registers the same
// names in testdata/bench_app.py).
const (
	taskNoop = "bench.noop"
	taskEcho = "bench.echo"
	// taskCount is the chord body: it returns the number of results.
	taskCount = "bench.count"
)

// ErrChordsUnsupported is why the canvas scenario is skipped on a result
// backend that cannot count chord parts (rpc://).
var ErrChordsUnsupported = errors.New("the result backend cannot run chords (Celery refuses them on rpc:// too); use a Redis backend")

// skipError marks a scenario that cannot run here: the report says why,
// and Run goes on.
type skipError struct{ error }

// scenario is one row of the report.
type scenario struct {
	name, desc string
	// unavailable says why the scenario cannot run here (nil = it can).
	unavailable func(r *runner) error
	// run measures celerity and fills res.
	run func(ctx context.Context, r *runner, res *Result) error
	// ceiling measures the transport's raw ceiling for the same work.
	ceiling func(ctx context.Context, r *runner, c Ceiling) (*Figure, error)
	// celery measures Python Celery doing the same work.
	celery func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error)
}

var scenarios = []*scenario{
	{
		name: ScenarioEnqueue, desc: "send N no-op tasks one call at a time (no worker)",
		run: runEnqueue(false),
		ceiling: func(ctx context.Context, r *runner, c Ceiling) (*Figure, error) {
			return r.rateFigure(c.Name()+" publish", r.cfg.N, func() (time.Duration, error) {
				return c.Enqueue(ctx, r.cfg.N, 1, r.envelope)
			})
		},
		celery: func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error) {
			return py.run(ctx, r, ScenarioEnqueue, r.cfg.N)
		},
	},
	{
		name: ScenarioEnqueueBatch, desc: "send N no-op tasks, published in batches of --batch (no worker)",
		run: runEnqueue(true),
		ceiling: func(ctx context.Context, r *runner, c Ceiling) (*Figure, error) {
			return r.rateFigure(fmt.Sprintf("%s publish x%d", c.Name(), r.cfg.Batch), r.cfg.N, func() (time.Duration, error) {
				return c.Enqueue(ctx, r.cfg.N, r.cfg.Batch, r.envelope)
			})
		},
	},
	{
		name: ScenarioDrain, desc: "run N pre-loaded no-op tasks (worker only)",
		run: runDrain,
		ceiling: func(ctx context.Context, r *runner, c Ceiling) (*Figure, error) {
			return r.rateFigure(c.Name()+" consume", r.cfg.N, func() (time.Duration, error) {
				return c.Drain(ctx, r.cfg.N, r.cfg.Concurrency*r.cfg.PrefetchMultiplier, r.envelope)
			})
		},
		celery: func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error) {
			return py.run(ctx, r, ScenarioDrain, r.cfg.N)
		},
	},
	{
		name: ScenarioThroughput, desc: "producers and worker together: N no-op tasks from first send to last done",
		run: runThroughput,
		ceiling: func(ctx context.Context, r *runner, c Ceiling) (*Figure, error) {
			return r.rateFigure(c.Name()+" handoff", r.cfg.N, func() (time.Duration, error) {
				return c.Handoff(ctx, r.cfg.N, r.cfg.Concurrency*r.cfg.PrefetchMultiplier, r.envelope)
			})
		},
		celery: func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error) {
			return py.run(ctx, r, ScenarioThroughput, r.cfg.N)
		},
	},
	{
		name: ScenarioLatency, desc: "round trip: send a task, run it, wait for its result (--latency-n of them)",
		unavailable: func(r *runner) error {
			if !r.hasBackend {
				return errors.New("the transport has no result backend")
			}
			return nil
		},
		run: runLatency,
		ceiling: func(ctx context.Context, r *runner, c Ceiling) (*Figure, error) {
			h := NewHistogram()
			if err := c.RoundTrip(ctx, r.cfg.LatencyN, r.envelope, h); err != nil {
				return nil, err
			}
			// The time of the round trips themselves, without set-up.
			d := time.Duration(h.Mean() * float64(h.Count()))
			l := h.Summary()
			return &Figure{What: c.Name() + " round trip", Tasks: r.cfg.LatencyN, Elapsed: d,
				Rate: Rate(r.cfg.LatencyN, d), Latency: &l, CDF: h.CDF()}, nil
		},
		celery: func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error) {
			return py.run(ctx, r, ScenarioLatency, r.cfg.LatencyN)
		},
	},
	{
		name: ScenarioCanvas, desc: "fan-out: N tasks as chords of --canvas-width header tasks, each joined by a body",
		unavailable: func(r *runner) error {
			if !r.hasBackend {
				return errors.New("the transport has no result backend")
			}
			return nil
		},
		run: runCanvas,
		celery: func(ctx context.Context, r *runner, py *celeryRunner) (*Figure, error) {
			return py.run(ctx, r, ScenarioCanvas, r.cfg.N)
		},
	},
}

func scenarioByName(name string) *scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	return nil
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// runner holds what the scenarios of one Run share.
type runner struct {
	cfg        Config
	tr         Transport
	bar        *progress
	hasBackend bool
	// args is the JSON argument list of every task ("" = none); argv
	// the same as values, for SendTask.
	args []byte
	argv []any
	// envelope is one of our task messages as the Redis transport
	// stores it: the raw ceilings move payloads of this size.
	envelope []byte
	// queues used so far, for Transport.Cleanup.
	queues []string
	py     *celeryRunner
}

func newRunner(ctx context.Context, cfg Config, tr Transport) (*runner, error) {
	r := &runner{cfg: cfg, tr: tr}
	if cfg.Progress != nil {
		r.bar = newProgress(cfg.Progress)
	}
	if cfg.Payload > 0 {
		s := strings.Repeat("x", cfg.Payload)
		r.argv = []any{s}
		r.args, _ = json.Marshal(r.argv)
	}
	b, be, err := tr.Open(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("bench: open %s: %w", tr.Name(), err)
	}
	r.hasBackend = be != nil
	if be != nil {
		be.Close()
	}
	b.Close()
	if r.envelope, err = r.sampleEnvelope(ctx); err != nil {
		return nil, err
	}
	if cfg.Compare == "celery" {
		r.py = newCeleryRunner(cfg)
	}
	return r, nil
}

// sampleEnvelope builds one no-op task message as the scenarios send it
// and returns its Redis envelope.
func (r *runner) sampleEnvelope(ctx context.Context) ([]byte, error) {
	var env []byte
	app, err := engine.New(r.engineConfig(memory.NewBroker(), nil, "sample"))
	if err != nil {
		return nil, err
	}
	defer app.Close()
	app.SetHooks(engine.Hooks{BeforePublish: func(m *codec.Message) { env = codec.AppendRedisEnvelope(nil, m) }})
	if err := app.SendRaw(ctx, taskNoop, r.args, nil); err != nil {
		return nil, fmt.Errorf("bench: sample message: %w", err)
	}
	return env, nil
}

// engineConfig is the App configuration of every scenario.
func (r *runner) engineConfig(b transport.Broker, be transport.Backend, queue string) engine.Config {
	c := r.cfg
	accept := []string{"json"}
	if c.Serializer != "json" {
		accept = append(accept, c.Serializer)
	}
	return engine.Config{
		Broker: b, Backend: be, BrokerURL: brokerName(c.Broker), ResultBackend: Redact(c.Backend),
		TaskSerializer: c.Serializer, TaskCompression: c.Compression, AcceptContent: accept,
		TaskDefaultQueue: queue, TaskAcksLate: c.AcksLate,
		WorkerConcurrency: c.Concurrency, WorkerPrefetchMultiplier: c.PrefetchMultiplier, WorkerPool: c.Pool,
		Logger: c.Logger,
	}
}

// queue returns the queue of a scenario and remembers it for cleanup.
func (r *runner) queue(scenario string) string {
	q := r.cfg.Prefix + "." + scenario
	for _, known := range r.queues {
		if known == q {
			return q
		}
	}
	r.queues = append(r.queues, q)
	return q
}

// run runs one scenario: celerity, then the raw ceiling, then Python
// Celery if asked. Only celerity's own failure is returned.
func (r *runner) run(ctx context.Context, s *scenario) (Result, error) {
	res := Result{Scenario: s.name, Description: s.desc}
	if s.unavailable != nil {
		if err := s.unavailable(r); err != nil {
			res.Skipped = err.Error()
			r.bar.note("%-22s skipped: %v", s.name, err)
			return res, nil
		}
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := s.run(sctx, r, &res); err != nil {
		var skip skipError
		if errors.As(err, &skip) {
			res = Result{Scenario: s.name, Description: s.desc, Skipped: skip.Error()}
			r.bar.note("%-22s skipped: %v", s.name, skip.error)
			return res, nil
		}
		if sctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %v: %w", r.cfg.Timeout, err)
		}
		return res, err
	}
	if c := r.tr.Ceiling(); c != nil && s.ceiling != nil {
		f, err := s.ceiling(sctx, r, c)
		if err != nil {
			f = &Figure{What: c.Name(), Skipped: err.Error()}
		}
		res.Ceiling = f
	}
	if r.py != nil {
		if err := r.py.ready(r.tr); err != nil {
			res.Celery = &Figure{What: "celery", Skipped: err.Error()}
		} else if s.celery == nil {
			res.Celery = &Figure{What: "celery", Skipped: "no Python Celery counterpart for this scenario"}
		} else {
			f, err := s.celery(sctx, r, r.py)
			if err != nil {
				f = &Figure{What: "celery", Skipped: err.Error()}
			}
			res.Celery = f
		}
	}
	return res, ctx.Err()
}

// rateFigure times f for a rate figure.
func (r *runner) rateFigure(what string, n int, f func() (time.Duration, error)) (*Figure, error) {
	d, err := f()
	if err != nil {
		return nil, err
	}
	return &Figure{What: what, Tasks: n, Elapsed: d, Rate: Rate(n, d)}, nil
}

// measure runs f, which returns the duration of its timed part, and
// fills res with the figures and the allocations of that run.
func measure(res *Result, tasks int, f func() (time.Duration, error)) error {
	runtime.GC()
	before := readMem()
	d, err := f()
	after := readMem()
	if err != nil {
		return err
	}
	res.Tasks, res.Elapsed, res.Rate = tasks, d, Rate(tasks, d)
	res.Alloc = allocDelta(before, after, tasks)
	return nil
}

// bed is one scenario's app, with a worker counting finished tasks.
type bed struct {
	r      *runner
	app    *engine.App
	broker transport.Broker
	queue  string
	target int64
	done   atomic.Int64 // tasks ended, as count last saw them
	failed atomic.Int64
	all    chan struct{} // closed when done reaches target
	end    time.Time     // when count saw done reach target; set before all is closed
	ready  chan time.Time
	w      *engine.Worker
	stopW  func() error
}

// newBed opens the transport for a scenario. publish, when set, wraps
// the broker the app publishes through.
func (r *runner) newBed(ctx context.Context, scenario string, target int, publish func(transport.Broker) transport.Broker) (*bed, error) {
	b, be, err := r.tr.Open(ctx, scenario)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", r.tr.Name(), err)
	}
	q := r.queue(scenario)
	if p, ok := b.(purger); ok {
		p.Purge(q) // leftovers of an interrupted run
	}
	var pub transport.Broker = b
	if publish != nil {
		pub = publish(b)
	}
	app, err := engine.New(r.engineConfig(pub, be, q))
	if err != nil {
		b.Close()
		if be != nil {
			be.Close()
		}
		return nil, err
	}
	t := &bed{r: r, app: app, broker: b, queue: q, target: int64(target),
		all: make(chan struct{}), ready: make(chan time.Time, 1)}
	engine.RegisterRaw(app, taskNoop, func(context.Context, *engine.Task) error { return nil },
		engine.TaskIgnoreResult(true))
	engine.RegisterRaw(app, taskEcho, func(_ context.Context, t *engine.Task) error {
		t.Return(t.Args())
		return nil
	})
	engine.Register1(app, taskCount, func(_ context.Context, parts []json.RawMessage) (int, error) {
		return len(parts), nil
	})
	app.SetHooks(engine.Hooks{
		WorkerReady: func(*engine.Worker) { t.ready <- time.Now() },
	})
	return t, nil
}

// purger is implemented by the brokers of this repository.
type purger interface {
	Purge(queue string) int
}

// close stops the worker and closes the app, dropping the queue's
// leftovers.
func (t *bed) close() error {
	var errs []error
	if t.stopW != nil {
		errs = append(errs, t.stopW())
	}
	if p, ok := t.broker.(purger); ok {
		p.Purge(t.queue)
	}
	errs = append(errs, t.app.Close())
	return errors.Join(errs...)
}

// startWorker starts the worker and returns when it is consuming, with
// the time it became ready.
func (t *bed) startWorker(ctx context.Context) (time.Time, error) {
	w, err := t.app.Worker(engine.WorkerConfig{})
	if err != nil {
		return time.Time{}, err
	}
	t.w = w
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	exited := make(chan error, 1)
	go func() { exited <- w.Run(wctx) }()
	stopCount, counted := make(chan struct{}), make(chan struct{})
	go func() { t.count(stopCount); close(counted) }()
	t.stopW = func() error {
		close(stopCount)
		<-counted
		cancel()
		return <-exited
	}
	select {
	case at := <-t.ready:
		return at, nil
	case err := <-exited:
		close(stopCount)
		<-counted
		t.stopW = nil
		return time.Time{}, fmt.Errorf("worker: %w", err)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// countEvery is how often count reads the worker's counters: the end
// of a run is seen up to this late (0.1 % of a 100 ms run).
const countEvery = 100 * time.Microsecond

// count follows the worker's counters until stop is closed, for the
// progress bar (done) and for wait: a task has ended when it succeeded,
// failed, was retried, rejected or revoked, and failed unless it
// succeeded. When the ended reach the target it notes the time and closes
// all.
//
// The worker adds to its success counter once per batch of tasks, so
// reading it costs the executors nothing per task. Before, a TaskPostrun
// hook bumped one counter that both executors wrote for every task, and
// the line moving between their cores held the throughput scenario to
// 4.0-5.1 M tasks/s where this reads 5.5-9.0 (memory, n=1000000, 4
// interleaved pairs; 8.1-8.9 in three later runs).
func (t *bed) count(stop <-chan struct{}) {
	tick := time.NewTicker(countEvery)
	defer tick.Stop()
	st := t.w.Stats()
	for {
		failed := st.Failed.Load() + st.Retried.Load() + st.Rejected.Load() + st.Revoked.Load()
		done := st.Succeeded.Load() + failed
		t.failed.Store(failed)
		t.done.Store(done)
		if done >= t.target {
			t.end = time.Now()
			close(t.all)
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// wait returns when target tasks have ended (see count), with the time
// count saw the last one.
func (t *bed) wait(ctx context.Context) (time.Time, error) {
	select {
	case <-t.all:
		return t.end, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("%d of %d tasks finished: %w", t.done.Load(), t.target, ctx.Err())
	}
}

// produce sends n tasks from the configured number of goroutines,
// counting them in sent.
func (r *runner) produce(ctx context.Context, n int, sent *atomic.Int64, send func(ctx context.Context) error) error {
	p := min(r.cfg.Producers, n)
	var wg sync.WaitGroup
	errs := make([]error, p)
	for i := range p {
		share := n / p
		if i < n%p {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range share {
				if err := send(ctx); err != nil {
					errs[i] = err
					return
				}
				if k%64 == 63 {
					sent.Add(64)
				}
			}
			sent.Add(int64(share % 64))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sendNoop sends one no-op task.
func (t *bed) sendNoop(ctx context.Context) error {
	return t.app.SendRaw(ctx, taskNoop, t.r.args, nil, noopOpts...)
}

// noopOpts mark the no-op tasks as results-ignored, so that a Python
// worker stores none either.
var noopOpts = []engine.Option{engine.IgnoreResult(true)}

func runEnqueue(batched bool) func(ctx context.Context, r *runner, res *Result) error {
	return func(ctx context.Context, r *runner, res *Result) error {
		name := ScenarioEnqueue
		var wrap func(transport.Broker) transport.Broker
		var bt *batcher
		if batched {
			name = ScenarioEnqueueBatch
			wrap = func(b transport.Broker) transport.Broker { bt = newBatcher(b, r.cfg.Batch); return bt }
		}
		t, err := r.newBed(ctx, name, r.cfg.N, wrap)
		if err != nil {
			return err
		}
		defer t.close()
		var sent atomic.Int64
		stop := r.bar.phase(name, int64(r.cfg.N), &sent)
		err = measure(res, r.cfg.N, func() (time.Duration, error) {
			start := time.Now()
			if err := r.produce(ctx, r.cfg.N, &sent, t.sendNoop); err != nil {
				return 0, err
			}
			if bt != nil {
				if err := bt.flush(ctx); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		})
		stop()
		return err
	}
}

// preload sends n no-op tasks to the bed's queue in batches, untimed.
func (r *runner) preload(ctx context.Context, t *bed, bt *batcher, n int) error {
	var sent atomic.Int64
	stop := r.bar.phase("  pre-loading", int64(n), &sent)
	defer stop()
	if err := r.produce(ctx, n, &sent, t.sendNoop); err != nil {
		return err
	}
	return bt.flush(ctx)
}

// preloadQueue leaves n no-op tasks on the queue of scenario name.
func (r *runner) preloadQueue(ctx context.Context, name string, n int) error {
	var bt *batcher
	t, err := r.newBed(ctx, name, n, func(b transport.Broker) transport.Broker {
		bt = newBatcher(b, max(r.cfg.Batch, 1000))
		return bt
	})
	if err != nil {
		return err
	}
	defer t.app.Close() // not t.close, which purges
	return r.preload(ctx, t, bt, n)
}

// purge drops the messages left on the queue of scenario name.
func (r *runner) purge(ctx context.Context, name string) error {
	b, be, err := r.tr.Open(ctx, "")
	if err != nil {
		return err
	}
	if p, ok := b.(purger); ok {
		p.Purge(r.queue(name))
	}
	if be != nil {
		be.Close()
	}
	return b.Close()
}

func runDrain(ctx context.Context, r *runner, res *Result) error {
	var bt *batcher
	t, err := r.newBed(ctx, ScenarioDrain, r.cfg.N, func(b transport.Broker) transport.Broker {
		bt = newBatcher(b, max(r.cfg.Batch, 1000))
		return bt
	})
	if err != nil {
		return err
	}
	defer t.close()
	if err := r.preload(ctx, t, bt, r.cfg.N); err != nil {
		return fmt.Errorf("pre-load: %w", err)
	}
	stop := r.bar.phase(ScenarioDrain, int64(r.cfg.N), &t.done)
	err = measure(res, r.cfg.N, func() (time.Duration, error) {
		start, err := t.startWorker(ctx)
		if err != nil {
			return 0, err
		}
		end, err := t.wait(ctx)
		return end.Sub(start), err
	})
	stop()
	res.Failed = int(t.failed.Load())
	return err
}

func runThroughput(ctx context.Context, r *runner, res *Result) error {
	t, err := r.newBed(ctx, ScenarioThroughput, r.cfg.N, nil)
	if err != nil {
		return err
	}
	defer t.close()
	if _, err := t.startWorker(ctx); err != nil {
		return err
	}
	stop := r.bar.phase(ScenarioThroughput, int64(r.cfg.N), &t.done)
	err = measure(res, r.cfg.N, func() (time.Duration, error) {
		var sent atomic.Int64
		start := time.Now()
		if err := r.produce(ctx, r.cfg.N, &sent, t.sendNoop); err != nil {
			return 0, err
		}
		end, err := t.wait(ctx)
		return end.Sub(start), err
	})
	stop()
	res.Failed = int(t.failed.Load())
	return err
}

// warmup is the number of untimed round trips before the latency run.
func warmup(n int) int { return min(200, max(n/10, 10)) }

func runLatency(ctx context.Context, r *runner, res *Result) error {
	n := r.cfg.LatencyN
	w := warmup(n)
	t, err := r.newBed(ctx, ScenarioLatency, n+w, nil)
	if err != nil {
		return err
	}
	defer t.close()
	if _, err := t.startWorker(ctx); err != nil {
		return err
	}
	ids := make([][]string, r.cfg.Clients+1) // per client; the last for the warm-up
	defer forget(t.app, ids)
	roundTrip := func(h *Histogram, client int) error {
		start := time.Now()
		ar, err := t.app.SendTask(ctx, taskEcho, r.argv, nil)
		if err != nil {
			return err
		}
		ids[client] = append(ids[client], ar.ID)
		m, err := ar.Wait(ctx)
		if err != nil {
			return err
		}
		if h != nil {
			h.RecordDuration(time.Since(start))
		}
		if m.State != codec.StateSuccess {
			return fmt.Errorf("task %s: %s", ar.ID, m.StateName)
		}
		return nil
	}
	for range w {
		if err := roundTrip(nil, r.cfg.Clients); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	var count atomic.Int64
	stop := r.bar.phase(ScenarioLatency, int64(n), &count)
	clients := min(r.cfg.Clients, n)
	hists := make([]*Histogram, clients)
	for i := range hists {
		hists[i] = NewHistogram()
	}
	err = measure(res, n, func() (time.Duration, error) {
		var wg sync.WaitGroup
		errs := make([]error, clients)
		start := time.Now()
		for i := range clients {
			share := n / clients
			if i < n%clients {
				share++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range share {
					if err := roundTrip(hists[i], i); err != nil {
						errs[i] = err
						return
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		return time.Since(start), errors.Join(errs...)
	})
	stop()
	if err != nil {
		return err
	}
	for _, h := range hists[1:] {
		hists[0].Merge(h)
	}
	l := hists[0].Summary()
	res.Latency, res.CDF = &l, hists[0].CDF()
	return nil
}

// forget deletes the results of the latency run (untimed), a few
// deletions at a time.
func forget(app *engine.App, ids [][]string) {
	be := app.Backend()
	if be == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, list := range ids {
		for part := range slices.Chunk(list, max(len(list)/4, 1)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, id := range part {
					if be.ForgetResult(ctx, id) != nil {
						return
					}
				}
			}()
		}
	}
	wg.Wait()
}

// runCanvas applies N/width chords of width header tasks (echo, whose
// results the chord collects) with a counting body, and times them from
// the first apply to the last body done.
func runCanvas(ctx context.Context, r *runner, res *Result) error {
	width := min(r.cfg.CanvasWidth, r.cfg.N)
	chords := max(r.cfg.N/width, 1)
	tasks := chords * width
	t, err := r.newBed(ctx, ScenarioCanvas, tasks+chords, nil)
	if err != nil {
		return err
	}
	defer t.close()
	if _, err := t.startWorker(ctx); err != nil {
		return err
	}
	header := make([]*engine.Signature, width)
	for i := range header {
		header[i] = engine.SigI(taskEcho, r.argv...)
	}
	body := engine.Sig(taskCount)
	bodies := make([]*engine.AsyncResult[any], chords)
	stop := r.bar.phase(ScenarioCanvas, int64(tasks+chords), &t.done)
	err = measure(res, tasks, func() (time.Duration, error) {
		start := time.Now()
		for i := range bodies {
			b, err := t.app.ApplyChord(ctx, header, body)
			if errors.Is(err, engine.ErrChordUnsupported) {
				return 0, skipError{ErrChordsUnsupported}
			}
			if err != nil {
				return 0, err
			}
			bodies[i] = b
		}
		end, err := t.wait(ctx)
		return end.Sub(start), err
	})
	stop()
	if err != nil {
		return err
	}
	res.Failed = int(t.failed.Load())
	// Every body saw all of its header's results.
	for _, b := range bodies {
		m, err := b.Meta(ctx)
		if err != nil {
			return err
		}
		if m.State != codec.StateSuccess || string(m.Result) != strconv.Itoa(width) {
			return fmt.Errorf("chord body %s: %s %s, want SUCCESS %d", b.ID, m.StateName, m.Result, width)
		}
	}
	return nil
}

// batcher publishes what the engine sends in batches: the engine sends one
// message per call, and this is how a caller batches (the seam's Publish
// takes many). Safe for concurrent use.
type batcher struct {
	transport.Broker
	size int
	mu   sync.Mutex
	buf  []*codec.Message
}

func newBatcher(b transport.Broker, size int) *batcher {
	return &batcher{Broker: b, size: size, buf: make([]*codec.Message, 0, size)}
}

// Publish queues msgs and publishes a batch when one is full.
func (b *batcher) Publish(ctx context.Context, msgs ...*codec.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, msgs...)
	if len(b.buf) < b.size {
		return nil
	}
	return b.flushLocked(ctx)
}

func (b *batcher) flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked(ctx)
}

func (b *batcher) flushLocked(ctx context.Context) error {
	if len(b.buf) == 0 {
		return nil
	}
	err := b.Broker.Publish(ctx, b.buf...)
	clear(b.buf)
	b.buf = b.buf[:0]
	return err
}
