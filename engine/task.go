package engine

import (
	"context"
	"fmt"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// Handler is the raw form of a task: it reads its arguments as JSON views
// (t.Args, t.Kwargs) and sets its return value with t.Return. It is the
// zero-allocation form; Register0..Register3 build typed handlers on it.
type Handler func(ctx context.Context, t *Task) error

// Task is what a running task knows about itself (Celery's task.request)
// and how it reports back. A *Task and every string and slice it returns
// are valid only until the handler returns: copy (strings.Clone) what you
// keep. It is not safe for concurrent use.
type Task struct {
	// ID is the task id; Name the registered name.
	ID, Name string
	// RootID and ParentID place the task in its workflow.
	RootID, ParentID string
	// GroupID is the group or chord the task belongs to ("" = none) and
	// GroupIndex its position (-1 = unknown).
	GroupID    string
	GroupIndex int
	// Retries counts earlier attempts.
	Retries int
	// Queue is the routing key the message arrived with; Exchange its
	// exchange.
	Queue, Exchange string
	// Hostname is the worker's node name.
	Hostname string
	// ETA and Expires come from the message (zero = none).
	ETA, Expires time.Time
	// Redelivered is set when the broker delivered the message before.
	Redelivered bool
	// Origin is the sender's node name.
	Origin string

	msg       *codec.Message
	def       *taskDef
	w         *Worker
	args      []byte
	kwargs    []byte
	embed     []byte
	result    []byte
	hasResult bool
	started   time.Time     // set when a hook needs Runtime
	runtime   time.Duration // set when a hook needs Runtime
}

// Result returns the JSON return value the handler set ("null" when it set
// none), valid in TaskSuccess and TaskPostrun hooks.
func (t *Task) Result() []byte {
	if !t.hasResult {
		return jsonNull
	}
	return t.result
}

// Started returns when the handler started and Runtime how long it ran;
// both are measured only while a TaskSuccess, TaskFailure or TaskPostrun
// hook is installed (zero otherwise), to keep clock reads off the hot path.
func (t *Task) Started() time.Time { return t.started }

// Runtime: see Started.
func (t *Task) Runtime() time.Duration { return t.runtime }

// Args returns the positional arguments as a JSON array (a view).
func (t *Task) Args() []byte { return t.args }

// Kwargs returns the keyword arguments as a JSON object (a view).
func (t *Task) Kwargs() []byte { return t.kwargs }

// Message returns the message being run (valid during the handler).
func (t *Task) Message() *codec.Message { return t.msg }

// Return sets the task's return value to raw, a JSON document, copied.
func (t *Task) Return(raw []byte) {
	t.result = append(t.result[:0], raw...)
	t.hasResult = true
}

// ReturnValue sets the task's return value to v encoded as JSON.
func (t *Task) ReturnValue(v any) error {
	b, err := appendJSON(t.result[:0], v)
	if err != nil {
		return fmt.Errorf("engine: encode result of %s: %w", t.Name, err)
	}
	t.result, t.hasResult = b, true
	return nil
}

// Retry returns the error a handler returns to retry the task after
// countdown (0 = the task's default delay), as Celery's self.retry.
func (t *Task) Retry(err error, countdown time.Duration) error { return Retry(err, countdown) }

// UpdateState stores a custom state (Celery's update_state) with meta as
// its result, e.g. t.UpdateState(ctx, "PROGRESS", map[string]int{"done": 3}).
func (t *Task) UpdateState(ctx context.Context, state string, meta any) error {
	st, ok := codec.ParseState([]byte(state))
	if !ok {
		st = codec.StateCustom
	}
	raw, err := appendJSON(nil, meta)
	if err != nil {
		return fmt.Errorf("engine: update_state meta: %w", err)
	}
	r := codec.Result{State: st, Result: raw, TaskID: t.msg.ID, GroupID: t.msg.Group, ParentID: t.msg.ParentID}
	if st == codec.StateCustom {
		r.CustomState = []byte(state)
	}
	return t.w.storeResult(ctx, &r, nil)
}

// reset points t at m for a new run.
func (t *Task) reset(w *Worker, def *taskDef, m *codec.Message) {
	s := unsafeconv.String
	t.ID, t.Name, t.RootID, t.ParentID = s(m.ID), s(m.Task), s(m.RootID), s(m.ParentID)
	t.GroupID, t.GroupIndex, t.Retries = s(m.Group), -1, m.Retries
	if m.HasGroupIndex {
		t.GroupIndex = m.GroupIndex
	}
	t.Queue, t.Exchange, t.Hostname = s(m.RoutingKey), s(m.Exchange), w.app.cfg.Hostname
	t.ETA, t.Expires, t.Redelivered, t.Origin = m.ETA, m.Expires, m.Redelivered, s(m.Origin)
	t.msg, t.def, t.w = m, def, w
	t.args, t.kwargs, t.embed = nil, nil, nil
	t.result, t.hasResult = t.result[:0], false
	t.started, t.runtime = time.Time{}, 0
}

// TaskOption configures a registered task (the @app.task(...) options).
type TaskOption func(*taskOptions)

type taskOptions struct {
	params          []string
	maxRetries      int
	hasMaxRetries   bool
	retryDelay      time.Duration
	autoretry       func(error) bool
	retryBackoff    time.Duration
	retryBackoffMax time.Duration
	retryJitter     bool
	ignoreResult    *bool
	acksLate        *bool
	trackStarted    *bool
	timeLimit       time.Duration
	softTimeLimit   time.Duration
	rateLimit       string
}

// Params names the handler's parameters, so that keyword arguments
// (Python's add.apply_async((2,), {"y": 3})) reach the right position.
func Params(names ...string) TaskOption { return func(o *taskOptions) { o.params = names } }

// MaxRetries sets max_retries (-1 = forever).
func MaxRetries(n int) TaskOption {
	return func(o *taskOptions) { o.maxRetries, o.hasMaxRetries = n, true }
}

// DefaultRetryDelay sets default_retry_delay.
func DefaultRetryDelay(d time.Duration) TaskOption { return func(o *taskOptions) { o.retryDelay = d } }

// AutoRetryFor retries automatically when match(err) (Celery's
// autoretry_for), with the backoff set by RetryBackoff.
func AutoRetryFor(match func(error) bool) TaskOption {
	return func(o *taskOptions) { o.autoretry = match }
}

// RetryBackoff sets retry_backoff (base, doubled per retry), its cap
// retry_backoff_max (0 = 600s) and retry_jitter.
func RetryBackoff(base, maxDelay time.Duration, jitter bool) TaskOption {
	return func(o *taskOptions) { o.retryBackoff, o.retryBackoffMax, o.retryJitter = base, maxDelay, jitter }
}

// TaskIgnoreResult sets ignore_result for this task.
func TaskIgnoreResult(ignore bool) TaskOption {
	return func(o *taskOptions) { o.ignoreResult = &ignore }
}

// AcksLate sets acks_late for this task.
func AcksLate(late bool) TaskOption { return func(o *taskOptions) { o.acksLate = &late } }

// TrackStarted sets track_started for this task.
func TrackStarted(track bool) TaskOption { return func(o *taskOptions) { o.trackStarted = &track } }

// TaskTimeLimits sets the task's hard and soft time limits (0 = none).
func TaskTimeLimits(hard, soft time.Duration) TaskOption {
	return func(o *taskOptions) { o.timeLimit, o.softTimeLimit = hard, soft }
}

// RateLimit sets the task's rate limit, a Celery rate string ("10/s").
func RateLimit(rate string) TaskOption { return func(o *taskOptions) { o.rateLimit = rate } }

// RegisterRaw registers a raw handler under name.
func RegisterRaw(app *App, name string, h Handler, opts ...TaskOption) {
	def := &taskDef{name: name, handler: h}
	for _, o := range opts {
		o(&def.opts)
	}
	app.register(def)
}

// maxTypedArgs is the most positional arguments a typed handler takes
// (Register3).
const maxTypedArgs = 3

// argList splits a task's arguments into n (at most maxTypedArgs) raw
// positional values, views of the task's args, taking missing positions
// from kwargs by parameter name. Positional arguments alone cost no
// allocation.
func argList(t *Task, n int) ([maxTypedArgs][]byte, error) {
	var out [maxTypedArgs][]byte
	args := out[:0]
	if len(t.args) > 0 {
		var err error
		if args, err = codec.AppendJSONArrayElems(args, t.args); err != nil {
			return out, fmt.Errorf("%w: args: %v", ErrBadArgs, err)
		}
	}
	if len(args) > n {
		return out, fmt.Errorf("%w: %s takes %d positional arguments but %d were given", ErrBadArgs, t.Name, n, len(args))
	}
	if len(args) == n {
		return out, nil
	}
	var kw map[string]json.RawMessage
	if len(t.kwargs) > 0 {
		if err := json.Unmarshal(t.kwargs, &kw); err != nil {
			return out, fmt.Errorf("%w: kwargs: %v", ErrBadArgs, err)
		}
	}
	params := t.def.opts.params
	for i := len(args); i < n; i++ {
		if i >= len(params) {
			return out, fmt.Errorf("%w: %s missing positional argument %d (name the parameters with engine.Params to pass them as kwargs)", ErrBadArgs, t.Name, i+1)
		}
		v, ok := kw[params[i]]
		if !ok {
			return out, fmt.Errorf("%w: %s missing argument %q", ErrBadArgs, t.Name, params[i])
		}
		out[i] = v
	}
	return out, nil
}

func decodeArg[T any](raw []byte, i int, name string) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%w: %s argument %d: %v", ErrBadArgs, name, i+1, err)
	}
	return v, nil
}

func finish[R any](t *Task, r R, err error) error {
	if err != nil {
		return err
	}
	return t.ReturnValue(r)
}

// Task0 is a registered task without arguments returning R.
type Task0[R any] struct{ ref }

// Register0 registers fn as task name.
func Register0[R any](app *App, name string, fn func(context.Context) (R, error), opts ...TaskOption) *Task0[R] {
	RegisterRaw(app, name, func(ctx context.Context, t *Task) error {
		if _, err := argList(t, 0); err != nil {
			return err
		}
		r, err := fn(ctx)
		return finish(t, r, err)
	}, opts...)
	return &Task0[R]{ref{app, name}}
}

// Delay sends the task with default options.
func (k *Task0[R]) Delay(ctx context.Context) (*AsyncResult[R], error) { return k.ApplyAsync(ctx) }

// ApplyAsync sends the task with options.
func (k *Task0[R]) ApplyAsync(ctx context.Context, opts ...Option) (*AsyncResult[R], error) {
	return sendTyped[R](ctx, k.ref, opts)
}

// Task1 is a registered task of one argument returning R.
type Task1[A, R any] struct{ ref }

// Register1 registers fn as task name.
func Register1[A, R any](app *App, name string, fn func(context.Context, A) (R, error), opts ...TaskOption) *Task1[A, R] {
	RegisterRaw(app, name, func(ctx context.Context, t *Task) error {
		args, err := argList(t, 1)
		if err != nil {
			return err
		}
		a, err := decodeArg[A](args[0], 0, name)
		if err != nil {
			return err
		}
		r, err := fn(ctx, a)
		return finish(t, r, err)
	}, opts...)
	return &Task1[A, R]{ref{app, name}}
}

// Delay sends the task with default options.
func (k *Task1[A, R]) Delay(ctx context.Context, a A) (*AsyncResult[R], error) {
	return k.ApplyAsync(ctx, a)
}

// ApplyAsync sends the task with options.
func (k *Task1[A, R]) ApplyAsync(ctx context.Context, a A, opts ...Option) (*AsyncResult[R], error) {
	return sendTyped[R](ctx, k.ref, opts, a)
}

// Task2 is a registered task of two arguments returning R.
type Task2[A, B, R any] struct{ ref }

// Register2 registers fn as task name.
func Register2[A, B, R any](app *App, name string, fn func(context.Context, A, B) (R, error), opts ...TaskOption) *Task2[A, B, R] {
	RegisterRaw(app, name, func(ctx context.Context, t *Task) error {
		args, err := argList(t, 2)
		if err != nil {
			return err
		}
		a, err := decodeArg[A](args[0], 0, name)
		if err != nil {
			return err
		}
		b, err := decodeArg[B](args[1], 1, name)
		if err != nil {
			return err
		}
		r, err := fn(ctx, a, b)
		return finish(t, r, err)
	}, opts...)
	return &Task2[A, B, R]{ref{app, name}}
}

// Delay sends the task with default options.
func (k *Task2[A, B, R]) Delay(ctx context.Context, a A, b B) (*AsyncResult[R], error) {
	return k.ApplyAsync(ctx, a, b)
}

// ApplyAsync sends the task with options.
func (k *Task2[A, B, R]) ApplyAsync(ctx context.Context, a A, b B, opts ...Option) (*AsyncResult[R], error) {
	return sendTyped[R](ctx, k.ref, opts, a, b)
}

// Task3 is a registered task of three arguments returning R.
type Task3[A, B, C, R any] struct{ ref }

// Register3 registers fn as task name.
func Register3[A, B, C, R any](app *App, name string, fn func(context.Context, A, B, C) (R, error), opts ...TaskOption) *Task3[A, B, C, R] {
	RegisterRaw(app, name, func(ctx context.Context, t *Task) error {
		args, err := argList(t, 3)
		if err != nil {
			return err
		}
		a, err := decodeArg[A](args[0], 0, name)
		if err != nil {
			return err
		}
		b, err := decodeArg[B](args[1], 1, name)
		if err != nil {
			return err
		}
		c, err := decodeArg[C](args[2], 2, name)
		if err != nil {
			return err
		}
		r, err := fn(ctx, a, b, c)
		return finish(t, r, err)
	}, opts...)
	return &Task3[A, B, C, R]{ref{app, name}}
}

// Delay sends the task with default options.
func (k *Task3[A, B, C, R]) Delay(ctx context.Context, a A, b B, c C) (*AsyncResult[R], error) {
	return k.ApplyAsync(ctx, a, b, c)
}

// ApplyAsync sends the task with options.
func (k *Task3[A, B, C, R]) ApplyAsync(ctx context.Context, a A, b B, c C, opts ...Option) (*AsyncResult[R], error) {
	return sendTyped[R](ctx, k.ref, opts, a, b, c)
}

// ref names a registered task of an app.
type ref struct {
	app  *App
	name string
}

// Name returns the task's registered name.
func (r ref) Name() string { return r.name }
