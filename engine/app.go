package engine

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// App is a Celery application: configuration, task registry, producer and
// result access. It is safe for concurrent use; register tasks before
// starting workers that must know them.
type App struct {
	cfg     Config
	broker  transport.Broker
	one     transport.OnePublisher // broker, when it implements it
	backend transport.Backend
	loc     *time.Location
	log     *slog.Logger
	hooks   Hooks
	timed   bool // a hook reads Task.Runtime: time each run

	// tasks maps name -> *taskDef; copy-on-write so that the hot-path
	// lookup takes no lock.
	tasks   atomic.Pointer[map[string]*taskDef]
	regMu   sync.Mutex
	revoked revokedSet // shared by the app's workers
	revoker atomic.Pointer[revokerHolder]
	workers sync.Map // *Worker -> struct{}; terminations reach them
	ownsBkr bool
}

// New returns an App for cfg after validating it.
func New(cfg Config) (*App, error) {
	owns := cfg.Broker == nil
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Broker == nil {
		cfg.Broker = memory.NewBroker()
		if cfg.Backend == nil {
			cfg.Backend = memory.NewBackend(memory.ResultExpires(cfg.ResultExpires))
		}
	}
	loc, _ := time.LoadLocation(cfg.Timezone)
	a := &App{cfg: cfg, broker: cfg.Broker, backend: cfg.Backend, loc: loc, log: cfg.Logger, ownsBkr: owns}
	a.one, _ = cfg.Broker.(transport.OnePublisher)
	empty := map[string]*taskDef{}
	a.tasks.Store(&empty)
	registerBuiltins(a)
	return a, nil
}

// MustNew is New that panics on a configuration error, for examples and
// tests.
func MustNew(cfg Config) *App {
	a, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return a
}

// Config returns the app's configuration with defaults filled in.
func (a *App) Config() Config { return a.cfg }

// Broker returns the app's broker.
func (a *App) Broker() transport.Broker { return a.broker }

// Logger returns the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Backend returns the app's result backend, or nil.
func (a *App) Backend() transport.Backend { return a.backend }

// SetHooks installs signal handlers (see Hooks), replacing any. Call it
// before sending or starting workers.
func (a *App) SetHooks(h Hooks) {
	a.hooks = h
	a.timed = h.TaskSuccess != nil || h.TaskFailure != nil || h.TaskPostrun != nil
}

// AddHooks adds signal handlers to those installed: where both have a
// handler for a signal, both run, the earlier first. Events and metrics
// use it so that they do not displace the program's own hooks.
func (a *App) AddHooks(h Hooks) {
	o := a.hooks
	a.SetHooks(Hooks{
		BeforePublish:  join1(o.BeforePublish, h.BeforePublish),
		AfterPublish:   join2(o.AfterPublish, h.AfterPublish),
		TaskReceived:   join1(o.TaskReceived, h.TaskReceived),
		TaskPrerun:     join1(o.TaskPrerun, h.TaskPrerun),
		TaskPostrun:    join2(o.TaskPostrun, h.TaskPostrun),
		TaskSuccess:    join1(o.TaskSuccess, h.TaskSuccess),
		TaskFailure:    join2(o.TaskFailure, h.TaskFailure),
		TaskRetry:      join2(o.TaskRetry, h.TaskRetry),
		TaskRevoked:    join2(o.TaskRevoked, h.TaskRevoked),
		TaskRejected:   join2(o.TaskRejected, h.TaskRejected),
		WorkerReady:    join1(o.WorkerReady, h.WorkerReady),
		WorkerShutdown: join1(o.WorkerShutdown, h.WorkerShutdown),
	})
}

func join1[A any](a, b func(A)) func(A) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(x A) { a(x); b(x) }
}

func join2[A, B any](a, b func(A, B)) func(A, B) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(x A, y B) { a(x, y); b(x, y) }
}

// Close closes the broker and backend.
func (a *App) Close() error {
	var errs []error
	if a.broker != nil {
		errs = append(errs, a.broker.Close())
	}
	if a.backend != nil {
		errs = append(errs, a.backend.Close())
	}
	return errors.Join(errs...)
}

// taskDef is one registered task.
type taskDef struct {
	name    string
	handler Handler
	opts    taskOptions
}

// register adds def, replacing a task of the same name.
func (a *App) register(def *taskDef) {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	old := *a.tasks.Load()
	next := make(map[string]*taskDef, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[def.name] = def
	a.tasks.Store(&next)
}

// lookup finds a task by name without allocating.
func (a *App) lookup(name []byte) *taskDef {
	return (*a.tasks.Load())[string(name)]
}

// Registered returns the names of the registered tasks.
func (a *App) Registered() []string {
	m := *a.tasks.Load()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return names
}

// route picks exchange, routing key and priority for a task name from
// task_routes, else the default queue.
func (a *App) route(name string) (exchange, routingKey string, priority int, hasPriority bool) {
	for _, r := range a.cfg.TaskRoutes {
		ok := r.Pattern == name
		if !ok {
			ok, _ = path.Match(r.Pattern, name)
		}
		if !ok {
			continue
		}
		rk := r.RoutingKey
		if rk == "" {
			rk = r.Queue
		}
		if r.Priority != nil {
			return r.Exchange, rk, *r.Priority, true
		}
		return r.Exchange, rk, 0, false
	}
	return a.cfg.TaskDefaultExchange, a.cfg.TaskDefaultQueue, 0, false
}

// Revoker sends a revocation to every worker of the cluster, as Celery's
// app.control.revoke does; engine/control's Client is one.
type Revoker interface {
	Revoke(ctx context.Context, terminate bool, ids ...string) error
}

type revokerHolder struct{ r Revoker }

// SetRevoker makes AsyncResult.Revoke reach every worker of the cluster
// through r, as Celery's AsyncResult.revoke does, and not only this
// process's. Without one (the default, and on the memory transport, which
// has no control bus) it reaches this process's workers alone.
func (a *App) SetRevoker(r Revoker) {
	if r == nil {
		a.revoker.Store(nil)
		return
	}
	a.revoker.Store(&revokerHolder{r})
}

// revokeTimeout bounds AsyncResult.Revoke's broadcast.
const revokeTimeout = 10 * time.Second

// broadcastRevoke sends the revocation of ids through the app's Revoker,
// if it has one; a failure is logged.
func (a *App) broadcastRevoke(terminate bool, ids ...string) {
	h := a.revoker.Load()
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	if err := h.r.Revoke(ctx, terminate, ids...); err != nil {
		a.warnf("revoke: broadcast failed; only this process's workers know", "ids", ids, "err", err)
	}
}

// Revoke marks task ids as revoked for every worker of this app: a revoked
// task still queued is discarded (REVOKED result) when received or when
// its ETA comes. With terminate, a running task's context is cancelled
// (cause ErrTerminated). Revocation across processes goes through remote
// control (AsyncResult.Revoke with a Revoker, control.Client.Revoke).
func (a *App) Revoke(terminate bool, ids ...string) {
	a.revoked.add(ids...)
	if !terminate {
		return
	}
	a.workers.Range(func(k, _ any) bool {
		k.(*Worker).terminate(ids...)
		return true
	})
}

// Hooks are Celery's signals as plain functions; nil hooks are skipped.
// Hooks run synchronously on the goroutine that triggers them: keep them
// short. The *codec.Message, *Task and []byte arguments are valid only
// during the call.
type Hooks struct {
	BeforePublish func(m *codec.Message)
	AfterPublish  func(taskID, task string)
	// TaskReceived runs when a worker receives a message for a known task,
	// before ETA, expiry or rate limits are considered.
	TaskReceived   func(m *codec.Message)
	TaskPrerun     func(t *Task)
	TaskPostrun    func(t *Task, state codec.State)
	TaskSuccess    func(t *Task)
	TaskFailure    func(t *Task, err error)
	TaskRetry      func(t *Task, err error)
	TaskRevoked    func(id []byte, reason string)
	TaskRejected   func(m *codec.Message, reason error)
	WorkerReady    func(w *Worker)
	WorkerShutdown func(w *Worker)
}

// errorf logs a worker-side problem.
func (a *App) errorf(msg string, args ...any) { a.log.Error(msg, args...) }

// warnf logs a warning.
func (a *App) warnf(msg string, args ...any) { a.log.Warn(msg, args...) }

// contextBackground is used where the engine writes results on its own
// behalf (not bound to a caller's context).
var contextBackground = context.Background()
