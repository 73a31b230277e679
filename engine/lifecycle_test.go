package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/timelimit"
	"github.com/celerity-go/celerity/transport/memory"
)

func TestTypedTaskRoundTrip(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	add := Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	res, err := add.Delay(ctx, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Get(ctx)
	if err != nil || got != 5 {
		t.Fatalf("Get = %v, %v; want 5", got, err)
	}
	if ok, err := res.Successful(ctx); !ok || err != nil {
		t.Fatalf("Successful = %v, %v", ok, err)
	}
}

func TestKwargsReachNamedParams(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	Register2(app, "t.sub", func(_ context.Context, a, b int) (int, error) { return a - b, nil }, Params("a", "b"))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, err := app.SendTask(ctx, "t.sub", []any{10}, map[string]any{"b": 4})
	if err != nil {
		t.Fatal(err)
	}
	v, err := res.Get(ctx)
	if err != nil || v != float64(6) {
		t.Fatalf("Get = %v, %v; want 6", v, err)
	}
}

func TestRawHandlerSeesArgsAndReturns(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	RegisterRaw(app, "t.raw", func(_ context.Context, task *Task) error {
		task.Return([]byte(`{"args": ` + string(task.Args()) + `, "kwargs": ` + string(task.Kwargs()) + `}`))
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "t.raw", []byte(`[1,"two",[3.5,null,true]]`), []byte(`{"k":{"n":"v"}}`), TaskID("raw-1")); err != nil {
		t.Fatal(err)
	}
	got, err := ResultOf[map[string]any](app, "raw-1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := `map[args:[1 two [3.5 <nil> true]] kwargs:map[k:map[n:v]]]`
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFailureIsATaskErrorWithCeleryFields(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	boom := Register0(app, "t.boom", func(context.Context) (int, error) {
		return 0, &TaskError{Type: "ValueError", Module: "builtins", Args: []any{"bad input"}}
	})
	plain := Register0(app, "t.plain", func(context.Context) (int, error) { return 0, errors.New("plain go error") })
	panics := Register0(app, "t.panic", func(context.Context) (int, error) { panic("oops") })
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)

	r1, _ := boom.Delay(ctx)
	_, err := r1.Get(ctx)
	var te *TaskError
	if !errors.As(err, &te) || te.Type != "ValueError" || te.Module != "builtins" || fmt.Sprint(te.Args) != "[bad input]" {
		t.Fatalf("err = %#v", err)
	}
	r2, _ := plain.Delay(ctx)
	if _, err := r2.Get(ctx); !IsTaskError(err, "Exception") || !strings.Contains(err.Error(), "plain go error") {
		t.Fatalf("plain error recorded as %v", err)
	}
	r3, _ := panics.Delay(ctx)
	if _, err := r3.Get(ctx); !IsTaskError(err, "Exception") || !strings.Contains(err.Error(), "panic: oops") {
		t.Fatalf("panic recorded as %v", err)
	}
	if ok, _ := r3.Failed(ctx); !ok {
		t.Fatal("Failed() false for a failed task")
	}
}

func TestUnknownTaskIsRejectedAndRecordedNotRegistered(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	var rejected atomic.Int32
	app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
	app.SetHooks(Hooks{TaskRejected: func(*codec.Message, error) { rejected.Add(1) }})
	ok := Register0(app, "t.ok", func(context.Context) (string, error) { return "fine", nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, err := app.SendTask(ctx, "t.nosuch", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = res.Get(ctx)
	if !IsTaskError(err, "NotRegistered") {
		t.Fatalf("unknown task result: %v, want NotRegistered", err)
	}
	// The worker goes on, and the bad message is gone (no redelivery loop).
	r2, _ := ok.Delay(ctx)
	if v, err := r2.Get(ctx); v != "fine" || err != nil {
		t.Fatalf("next task: %v %v", v, err)
	}
	if rejected.Load() != 1 || broker.Len("celery") != 0 {
		t.Fatalf("rejected=%d queue=%d", rejected.Load(), broker.Len("celery"))
	}
}

func TestRetryRepublishesSameIDAndSucceeds(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	var seen []string // "id:retries:parent"
	RegisterRaw(app, "t.flaky", func(_ context.Context, task *Task) error {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s:%d:%s", task.ID, task.Retries, task.ParentID))
		mu.Unlock()
		if task.Retries < 2 {
			return task.Retry(errors.New("not yet"), 10*time.Millisecond)
		}
		task.Return([]byte(`"done"`))
		return nil
	})
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "t.flaky", nil, nil, TaskID("flaky-1")); err != nil {
		t.Fatal(err)
	}
	if v, err := ResultOf[string](app, "flaky-1").Get(ctx); v != "done" || err != nil {
		t.Fatalf("Get = %q, %v", v, err)
	}
	want := []string{"flaky-1:0:", "flaky-1:1:flaky-1", "flaky-1:2:flaky-1"}
	if !slices.Equal(seen, want) {
		t.Fatalf("runs %v, want %v", seen, want)
	}
	if n := w.Stats().Retried.Load(); n != 2 {
		t.Fatalf("retried %d, want 2", n)
	}
}

func TestMaxRetriesExceededFails(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var runs atomic.Int32
	RegisterRaw(app, "t.always", func(_ context.Context, task *Task) error {
		runs.Add(1)
		return task.Retry(&TaskError{Type: "IOError", Module: "builtins", Args: []any{"down"}}, time.Millisecond)
	}, MaxRetries(2))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, _ := app.SendTask(ctx, "t.always", nil, nil)
	if _, err := res.Get(ctx); !IsTaskError(err, "IOError") {
		t.Fatalf("err = %v, want the retry reason IOError after max retries", err)
	}
	if runs.Load() != 3 {
		t.Fatalf("ran %d times, want 3 (first + 2 retries)", runs.Load())
	}
}

func TestAutoRetryBackoffCountdowns(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	var countdowns []time.Duration
	app.SetHooks(Hooks{BeforePublish: func(m *codec.Message) {
		if m.Retries > 0 {
			mu.Lock()
			countdowns = append(countdowns, time.Until(m.ETA).Round(100*time.Millisecond))
			mu.Unlock()
		}
	}})
	errFlaky := errors.New("flaky")
	def := &taskDef{opts: taskOptions{retryBackoff: time.Second, retryBackoffMax: 5 * time.Second}}
	w := &Worker{app: app}
	for retries, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := w.backoff(def, retries); got != want {
			t.Fatalf("backoff(retries=%d) = %v, want %v", retries, got, want)
		}
	}
	def.opts.retryJitter = true
	for range 100 {
		if got := w.backoff(def, 3); got < 0 || got > 5*time.Second || got%time.Second != 0 {
			t.Fatalf("jittered backoff %v outside [0, 5s] in whole seconds", got)
		}
	}
	// End to end: autoretry_for with a 1s base publishes retries with
	// countdowns of 1s then 2s.
	RegisterRaw(app, "t.auto", func(context.Context, *Task) error { return errFlaky },
		AutoRetryFor(func(err error) bool { return errors.Is(err, errFlaky) }),
		RetryBackoff(time.Second, 0, false), MaxRetries(2))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 15*time.Second)
	res, _ := app.SendTask(ctx, "t.auto", nil, nil)
	if _, err := res.Get(ctx); err == nil || !strings.Contains(err.Error(), "flaky") {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(countdowns, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("retry countdowns %v, want [1s 2s]", countdowns)
	}
}

func TestETAOrdering(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	rec := Register1(app, "t.rec", func(_ context.Context, i int) (int, error) {
		mu.Lock()
		order = append(order, i)
		mu.Unlock()
		wg.Done()
		return i, nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1, PrefetchMultiplier: 1})
	ctx := testCtx(t, 10*time.Second)
	wg.Add(5)
	base := time.Now()
	// Sent in reverse ETA order, with more ETA tasks than the prefetch
	// window (1): held ETA tasks must not block the window.
	for i := 4; i >= 0; i-- {
		if _, err := rec.ApplyAsync(ctx, i, ETA(base.Add(time.Duration(50+40*i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("ran in order %v, want ETA order", order)
	}
	if time.Since(base) < 200*time.Millisecond {
		t.Fatal("ETA tasks ran before their ETA")
	}
}

func TestExpiredTaskIsRevokedNotRun(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var ran atomic.Int32
	late := Register0(app, "t.late", func(context.Context) (int, error) { ran.Add(1); return 1, nil })
	ctx := testCtx(t, 10*time.Second)
	res, err := late.ApplyAsync(ctx, ExpiresIn(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Held for an ETA beyond its expiry: expires while waiting.
	res2, _ := late.ApplyAsync(ctx, Countdown(50*time.Millisecond), ExpiresIn(20*time.Millisecond))
	time.Sleep(5 * time.Millisecond)
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	for _, r := range []*AsyncResult[int]{res, res2} {
		_, err = r.Get(ctx)
		if !errors.Is(err, ErrRevoked) {
			t.Fatalf("expired task: %v, want ErrRevoked", err)
		}
		var te *TaskError
		errors.As(err, &te)
		if fmt.Sprint(te.Args) != "[expired]" {
			t.Fatalf("revoked reason %v, want [expired]", te.Args)
		}
	}
	if ran.Load() != 0 {
		t.Fatal("an expired task ran")
	}
}

// TestRevokeQueuedAndTerminateRunning: a revoked queued task does not
// run, and a terminated running one is REVOKED ["terminated"], as Celery
// records it, whether its handler returns context.Cause(ctx) or, the
// usual Go idiom, ctx.Err() (context.Canceled).
func TestRevokeQueuedAndTerminateRunning(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	started := make(chan struct{}, 1)
	slow := func(name string, ret func(ctx context.Context) error) *Task0[string] {
		return Register0(app, name, func(ctx context.Context) (string, error) {
			started <- struct{}{}
			<-ctx.Done()
			return "", ret(ctx)
		})
	}
	byCause := slow("t.slow", context.Cause)
	byErr := slow("t.slowErr", func(ctx context.Context) error { return ctx.Err() })
	var ran atomic.Int32
	other := Register0(app, "t.other", func(context.Context) (int, error) { ran.Add(1); return 1, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	queued, _ := other.ApplyAsync(ctx, Countdown(100*time.Millisecond))
	queued.Revoke(false)
	for _, task := range []*Task0[string]{byCause, byErr} {
		running, _ := task.Delay(ctx)
		<-started
		running.Revoke(true)
		_, err := running.Get(ctx)
		var te *TaskError
		if !errors.Is(err, ErrRevoked) || !errors.As(err, &te) || fmt.Sprint(te.Args) != "[terminated]" {
			t.Fatalf("terminated %s: %v, want REVOKED [terminated] as Celery records it", task.Name(), err)
		}
	}
	if _, err := queued.Get(ctx); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked queued task: %v", err)
	}
	if ran.Load() != 0 {
		t.Fatal("revoked task ran")
	}
}

func TestCustomStateViaUpdateState(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	step := make(chan struct{})
	var res *AsyncResult[any]
	RegisterRaw(app, "t.progress", func(ctx context.Context, task *Task) error {
		if err := task.UpdateState(ctx, "PROGRESS", map[string]int{"done": 3, "total": 10}); err != nil {
			return err
		}
		<-step
		return nil
	}, TrackStarted(true))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, _ = app.SendTask(ctx, "t.progress", nil, nil)
	eventually(t, "PROGRESS state", func() bool {
		m, err := res.Meta(ctx)
		return err == nil && m.StateName == "PROGRESS" && string(m.Result) == `{"done":3,"total":10}`
	})
	close(step)
	if _, err := res.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTrackStartedStoresStarted(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{TaskTrackStarted: true, Hostname: "w1@test"})
	step := make(chan struct{})
	wait := Register0(app, "t.wait", func(context.Context) (int, error) { <-step; return 7, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, _ := wait.Delay(ctx)
	eventually(t, "STARTED", func() bool {
		m, _ := res.Meta(ctx)
		return m.State == codec.StateStarted && strings.Contains(string(m.Result), `"hostname": "w1@test"`)
	})
	close(step)
	if v, err := res.Get(ctx); v != 7 || err != nil {
		t.Fatal(v, err)
	}
}

func TestWarmShutdownFinishesInFlightAndRequeuesUnstarted(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	backend := memory.NewBackend()
	app := newApp(t, Config{Broker: broker, Backend: backend, TaskAcksLate: true})
	release := make(chan struct{})
	var started, finished atomic.Int32
	slow := Register1(app, "t.hold", func(_ context.Context, i int) (int, error) {
		started.Add(1)
		<-release
		finished.Add(1)
		return i, nil
	})
	_, stop := startWorker(t, app, WorkerConfig{Concurrency: 2, PrefetchMultiplier: 4})
	ctx := testCtx(t, 20*time.Second)
	var results []*AsyncResult[int]
	for i := range 6 {
		r, _ := slow.Delay(ctx, i)
		results = append(results, r)
	}
	eventually(t, "two tasks running", func() bool { return started.Load() == 2 })
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	stop() // warm: the two running finish; the four prefetched go back
	if finished.Load() != 2 {
		t.Fatalf("finished %d in-flight tasks, want 2", finished.Load())
	}
	if n := broker.Len("celery"); n != 4 {
		t.Fatalf("%d messages back in the queue, want the 4 unstarted", n)
	}
	// A new worker runs the rest: every task exactly once.
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	for i, r := range results {
		if v, err := r.Get(ctx); v != i || err != nil {
			t.Fatalf("task %d: %v %v", i, v, err)
		}
	}
	if started.Load() != 6 {
		t.Fatalf("tasks started %d times, want 6", started.Load())
	}
}

func TestRoutesPickQueues(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := newApp(t, Config{Broker: broker, TaskRoutes: []Route{
		{Pattern: "feed.*", Queue: "feeds"},
		{Pattern: "mail.send", Queue: "mail"},
	}})
	ctx := testCtx(t, 5*time.Second)
	for _, name := range []string{"feed.fetch", "feed.parse", "mail.send", "other"} {
		if err := app.SendRaw(ctx, name, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.SendRaw(ctx, "feed.x", nil, nil, Queue("override")); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(broker.Len("feeds"), broker.Len("mail"), broker.Len("celery"), broker.Len("override"))
	if got != "2 1 1 1" {
		t.Fatalf("queue lengths feeds mail celery override = %s, want 2 1 1 1", got)
	}
}

func TestWorkerConsumesSeveralQueuesAndPriorities(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	RegisterRaw(app, "t.q", func(_ context.Context, task *Task) error {
		mu.Lock()
		order = append(order, task.Queue+":"+string(task.Args()))
		mu.Unlock()
		wg.Done()
		return nil
	})
	ctx := testCtx(t, 10*time.Second)
	wg.Add(3)
	app.SendRaw(ctx, "t.q", []byte(`[1]`), nil, Queue("a"), Priority(0))
	app.SendRaw(ctx, "t.q", []byte(`[2]`), nil, Queue("b"), Priority(9))
	app.SendRaw(ctx, "t.q", []byte(`[3]`), nil, Queue("a"), Priority(5))
	startWorker(t, app, WorkerConfig{Concurrency: 1, Queues: []string{"a", "b"}})
	wg.Wait()
	if !slices.Equal(order, []string{"b:[2]", "a:[3]", "a:[1]"}) {
		t.Fatalf("order %v, want priority order across queues", order)
	}
}

func TestHooksFire(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	var events []string
	add := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	app.SetHooks(Hooks{
		BeforePublish: func(m *codec.Message) { add("before_publish:" + string(m.Task)) },
		AfterPublish:  func(_, name string) { add("after_publish:" + name) },
		TaskPrerun:    func(t *Task) { add("prerun:" + t.Name) },
		TaskPostrun:   func(t *Task, s codec.State) { add("postrun:" + s.String()) },
		TaskSuccess:   func(t *Task) { add("success") },
		TaskFailure:   func(t *Task, err error) { add("failure") },
		WorkerReady:   func(*Worker) { add("ready") },
	})
	ok := Register0(app, "t.ok", func(context.Context) (int, error) { return 1, nil })
	bad := Register0(app, "t.bad", func(context.Context) (int, error) { return 0, errors.New("x") })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	r1, _ := ok.Delay(ctx)
	r1.Get(ctx)
	r2, _ := bad.Delay(ctx)
	r2.Get(ctx)
	// As in Celery, a task's result is stored before its success or
	// failure hook and its postrun hook run: Get can return first.
	wants := []string{"ready", "before_publish:t.ok", "after_publish:t.ok", "prerun:t.ok",
		"postrun:SUCCESS", "success", "postrun:FAILURE", "failure"}
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var m []string
		for _, want := range wants {
			if !slices.Contains(events, want) {
				m = append(m, want)
			}
		}
		return m
	}
	for len(missing()) > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("hooks %q did not fire; got %v", m, events)
	}
}

func TestSoftTimeLimitCancelsContext(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	coop := Register0(app, "t.coop", func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", context.Cause(ctx)
	}, TaskTimeLimits(0, 50*time.Millisecond))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, _ := coop.Delay(ctx)
	if _, err := res.Get(ctx); !IsTaskError(err, "SoftTimeLimitExceeded") {
		t.Fatalf("err = %v, want SoftTimeLimitExceeded", err)
	}
	// The slot's context is renewed: the next task is not born cancelled.
	ok := Register0(app, "t.after", func(ctx context.Context) (bool, error) { return ctx.Err() == nil, nil })
	r2, _ := ok.Delay(ctx)
	if alive, err := r2.Get(ctx); !alive || err != nil {
		t.Fatalf("next task's context alive=%v err=%v", alive, err)
	}
}

func TestHardTimeLimitAbandonsStuckTaskAndWorkerGoesOn(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{TaskAcksLate: true})
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	hang := Register0(app, "t.hang", func(context.Context) (int, error) {
		<-stuck // ignores its context, like a `for {}` would
		return 1, nil
	}, TaskTimeLimits(50*time.Millisecond, 0))
	ping := Register0(app, "t.ping", func(context.Context) (string, error) { return "pong", nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	res, _ := hang.ApplyAsync(ctx, TimeLimit(50*time.Millisecond))
	_, err := res.Get(ctx)
	var te *TaskError
	if !errors.As(err, &te) || te.Type != "TimeLimitExceeded" || te.Module != "billiard.exceptions" {
		t.Fatalf("err = %v, want TimeLimitExceeded", err)
	}
	// billiard raises TimeLimitExceeded(<limit in seconds>): exc_message
	// [0.05], a number, not the string "0.05".
	if len(te.Args) != 1 || fmt.Sprint(te.Args[0]) != "0.05" {
		t.Fatalf("TimeLimitExceeded args %#v, want [0.05]", te.Args)
	}
	if _, isString := te.Args[0].(string); isString {
		t.Fatalf("TimeLimitExceeded args %#v: the limit is a string, Celery stores a number", te.Args)
	}
	// The only executor is stuck, yet the worker serves the next task.
	r2, _ := ping.Delay(ctx)
	if v, err := r2.Get(ctx); v != "pong" || err != nil {
		t.Fatalf("after abandon: %v %v", v, err)
	}
	_ = timelimit.ErrTimeLimitExceeded
}

// TestRevokeReservedTaskDoesNotRunIt: a task already fetched and waiting
// for a busy executor (inspect reserved) is revoked; Celery's worker
// does not run it (prefork skips revoked jobs not yet given to a child,
// solo checks as it starts) and records it REVOKED.
func TestRevokeReservedTaskDoesNotRunIt(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	started, unblock := make(chan struct{}), make(chan struct{})
	block := Register0(app, "t.block", func(ctx context.Context) (int, error) {
		close(started)
		<-unblock
		return 1, nil
	})
	var ran atomic.Int32
	other := Register0(app, "t.other", func(context.Context) (int, error) { ran.Add(1); return 1, nil })
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	first, _ := block.Delay(ctx)
	<-started
	queued, _ := other.Delay(ctx)
	eventually(t, "the second task is reserved", func() bool {
		for _, ti := range w.Reserved() {
			if ti.ID == queued.ID {
				return true
			}
		}
		return false
	})
	queued.Revoke(false)
	close(unblock)
	if _, err := first.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Get(ctx); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked reserved task: %v, want ErrRevoked", err)
	}
	if ran.Load() != 0 {
		t.Fatal("revoked reserved task ran")
	}
}

func TestRateLimitDelaysWithoutBlockingOtherTasks(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var limited, free atomic.Int32
	RegisterRaw(app, "t.limited", func(context.Context, *Task) error { limited.Add(1); return nil }, RateLimit("20/s"))
	RegisterRaw(app, "t.free", func(context.Context, *Task) error { free.Add(1); return nil })
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	for range 10 {
		app.SendRaw(ctx, "t.limited", nil, nil)
	}
	for range 200 {
		app.SendRaw(ctx, "t.free", nil, nil)
	}
	eventually(t, "unthrottled tasks", func() bool { return free.Load() == 200 })
	// 20/s with capacity 1: 10 tasks need >= 450ms; the 200 free ones did
	// not wait for them.
	if n := limited.Load(); n == 10 {
		t.Fatalf("all 10 rate-limited tasks ran before the 200 free ones finished")
	}
	eventually(t, "rate-limited tasks", func() bool { return limited.Load() == 10 })
}

func TestMaxTasksPerChildViaWorkerConfig(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	RegisterRaw(app, "t.count", func(context.Context, *Task) error { return nil })
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1, MaxTasksPerChild: 3})
	ctx := testCtx(t, 10*time.Second)
	for range 9 {
		app.SendRaw(ctx, "t.count", nil, nil)
	}
	eventually(t, "9 tasks", func() bool { return w.Stats().Succeeded.Load() == 9 })
	n := 0
	w.slots.Range(func(any, any) bool { n++; return true })
	if n < 3 {
		t.Fatalf("%d executor slots were created for 9 tasks at 3 per child, want >= 3", n)
	}
}

func TestLinkCallbacksTravelInEmbed(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var embed string
	app.SetHooks(Hooks{BeforePublish: func(m *codec.Message) {
		_, _, e, _ := codec.SplitJSONBody(m.Body)
		embed = string(e)
	}})
	ctx := testCtx(t, 5*time.Second)
	cb := &Signature{Task: "t.cb", Args: []byte(`[10]`), Kwargs: []byte(`{}`)}
	eb := &Signature{Task: "t.eb", Args: []byte(`["x"]`), Kwargs: []byte(`{}`), Immutable: true}
	if err := app.SendRaw(ctx, "t.main", []byte(`[1]`), nil, Link(cb), LinkError(eb)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Callbacks []Signature `json:"callbacks"`
		Errbacks  []Signature `json:"errbacks"`
		Chain     any         `json:"chain"`
		Chord     any         `json:"chord"`
	}
	if err := json.Unmarshal([]byte(embed), &got); err != nil {
		t.Fatalf("embed %s: %v", embed, err)
	}
	if len(got.Callbacks) != 1 || got.Callbacks[0].Task != "t.cb" || string(got.Callbacks[0].Args) != "[10]" || got.Callbacks[0].Immutable ||
		len(got.Errbacks) != 1 || got.Errbacks[0].Task != "t.eb" || !got.Errbacks[0].Immutable || got.Chain != nil || got.Chord != nil {
		t.Fatalf("embed %s", embed)
	}
}

func TestContentNotAcceptedIsRejected(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()}) // accept json only
	var ran atomic.Int32
	RegisterRaw(app, "t.x", func(context.Context, *Task) error { ran.Add(1); return nil })
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 5*time.Second)
	app.SendRaw(ctx, "t.x", nil, nil, Serializer("msgpack"))
	app.SendRaw(ctx, "t.x", nil, nil)
	eventually(t, "json task", func() bool { return ran.Load() == 1 && w.Stats().Rejected.Load() == 1 })
}

// One executor runs tasks in the order they were sent, while the fetch
// loop and the executor's own polling both take messages from the broker.
func TestOneExecutorKeepsQueueOrder(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	const n = 5000
	var mu sync.Mutex
	order := make([]int, 0, n)
	done := make(chan struct{})
	RegisterRaw(app, "t.seq", func(_ context.Context, task *Task) error {
		var args [1]int
		if err := json.Unmarshal(task.Args(), &args); err != nil {
			return err
		}
		mu.Lock()
		order = append(order, args[0])
		if len(order) == n {
			close(done)
		}
		mu.Unlock()
		return nil
	}, TaskIgnoreResult(true))
	startWorker(t, app, WorkerConfig{Concurrency: 1, PrefetchMultiplier: 2})
	ctx := testCtx(t, 20*time.Second)
	for i := range n {
		if err := app.SendRaw(ctx, "t.seq", fmt.Appendf(nil, "[%d]", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("ran %d of %d tasks", len(order), n)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("task %d ran in place %d (order %v...)", v, i, order[max(0, i-3):i+1])
		}
	}
}

// TestMixedBatchRunsEachTasksHandler: one fetched batch holding messages
// of several tasks, one of them unknown, in turn: every message reaches
// its own task's handler (routing remembers the last task looked up).
func TestMixedBatchRunsEachTasksHandler(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := newApp(t, Config{Broker: broker})
	var rejected atomic.Int32
	app.SetHooks(Hooks{TaskRejected: func(*codec.Message, error) { rejected.Add(1) }})
	var ran [2]atomic.Int32
	for i, name := range []string{"mix.a", "mix.b"} {
		RegisterRaw(app, name, func(_ context.Context, task *Task) error {
			if task.Name != name {
				t.Errorf("%s's handler ran %s", name, task.Name)
			}
			ran[i].Add(1)
			return nil
		}, TaskIgnoreResult(true))
	}
	ctx := testCtx(t, 10*time.Second)
	names := []string{"mix.a", "mix.a", "mix.b", "mix.nosuch", "mix.a", "mix.b", "mix.b", "mix.nosuch"}
	for range 4 {
		for _, name := range names {
			if err := app.SendRaw(ctx, name, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Sent before the worker starts: its first fetches take full batches.
	startWorker(t, app, WorkerConfig{Concurrency: 2, PrefetchMultiplier: 16})
	eventually(t, "all messages answered", func() bool {
		return ran[0].Load() == 12 && ran[1].Load() == 12 && rejected.Load() == 8
	})
}

// A task sent from inside a handler, with the handler's context or one
// derived from it, is that task's child, as Celery's send_task makes it:
// parent_id is the sender's id and root_id the sender's root. An explicit
// ParentID wins; a send from outside any task has no parent.
func TestTaskSentFromHandlerIsItsChild(t *testing.T) {
	app := newApp(t, Config{})
	type ids struct{ id, parent, root string }
	seen := make(chan ids, 8)
	record := func(t *Task) { seen <- ids{strings.Clone(t.ID), strings.Clone(t.ParentID), strings.Clone(t.RootID)} }
	RegisterRaw(app, "tasks.leaf", func(_ context.Context, t *Task) error { record(t); return nil })
	RegisterRaw(app, "tasks.middle", func(ctx context.Context, t *Task) error {
		record(t)
		derived, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := app.SendRaw(derived, "tasks.leaf", nil, nil, TaskID("grandchild")); err != nil {
			return err
		}
		return app.SendRaw(ctx, "tasks.leaf", nil, nil, TaskID("adopted"), ParentID("someone-else"))
	})
	RegisterRaw(app, "tasks.top", func(ctx context.Context, t *Task) error {
		record(t)
		return app.SendRaw(ctx, "tasks.middle", nil, nil, TaskID("child"))
	})
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "tasks.top", nil, nil, TaskID("top")); err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, ctx, seen, 4, func(r ids) string { return r.id })
	for _, want := range []ids{
		{"top", "", "top"},
		{"child", "top", "top"},
		{"grandchild", "child", "top"},
		{"adopted", "someone-else", "top"},
	} {
		if got[want.id] != want {
			t.Errorf("%s: parent %q root %q, want parent %q root %q",
				want.id, got[want.id].parent, got[want.id].root, want.parent, want.root)
		}
	}
}

// The tasks a handler sends are listed in its result's "children" as
// Celery's result tuples, whether it succeeds or fails; a task that sent
// none lists none.
func TestChildrenListedInResult(t *testing.T) {
	app := newApp(t, Config{})
	RegisterRaw(app, "tasks.leaf", func(context.Context, *Task) error { return nil })
	RegisterRaw(app, "tasks.fanout", func(ctx context.Context, t *Task) error {
		for _, id := range []string{"kid-1", "kid-2"} {
			if err := app.SendRaw(ctx, "tasks.leaf", nil, nil, TaskID(id)); err != nil {
				return err
			}
		}
		// Named parent and root: still listed, as Celery's add_to_parent.
		if err := app.SendRaw(ctx, "tasks.leaf", nil, nil, TaskID("kid-3"), ParentID("p"), RootID("r")); err != nil {
			return err
		}
		// Never sent: not listed (Celery lists a child once it is sent).
		if err := app.SendRaw(ctx, "tasks.leaf", nil, nil, TaskID("unsent"), Priority(12)); err == nil {
			return errors.New("priority 12 was sent")
		}
		if string(t.Args()) == `["fail"]` {
			return &TaskError{Type: "ValueError", Module: "builtins", Args: []any{"after sending"}}
		}
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	for _, c := range []struct{ id, args, want string }{
		{"ok", `[]`, `[[["kid-1", null], null], [["kid-2", null], null], [["kid-3", null], null]]`},
		{"failed", `["fail"]`, `[[["kid-1", null], null], [["kid-2", null], null], [["kid-3", null], null]]`},
		{"alone", ``, `[]`},
	} {
		name := "tasks.fanout"
		if c.id == "alone" {
			name = "tasks.leaf"
		}
		if err := app.SendRaw(ctx, name, []byte(c.args), nil, TaskID(c.id)); err != nil {
			t.Fatal(err)
		}
		r := app.Result(c.id)
		var meta Meta
		eventually(t, c.id+" done", func() bool {
			var err error
			meta, err = r.Meta(ctx)
			return err == nil && meta.State.Ready()
		})
		if string(meta.Children) != c.want {
			t.Errorf("%s: children %s, want %s", c.id, meta.Children, c.want)
		}
	}
}

// A group or a chord applied from inside a handler is listed in its
// result's children as one GroupResult tuple (the chord's header group),
// its members not one by one, as Celery 5.2.6 records it (checked against
// its worker: a task applying group(a, b) stores [[[gid, null], [[[a,
// null], null], [[b, null], null]]]]); the members still have the
// handler's task as parent.
func TestGroupAppliedFromHandlerListedAsOneGroup(t *testing.T) {
	app := newApp(t, Config{})
	type leafRun struct{ id, parent, group string }
	leaves := make(chan leafRun, 8)
	RegisterRaw(app, "tasks.leaf", func(_ context.Context, t *Task) error {
		leaves <- leafRun{strings.Clone(t.ID), strings.Clone(t.ParentID), strings.Clone(t.GroupID)}
		return nil
	})
	withID := func(s *Signature, id string) *Signature { s.Options.TaskID = id; return s }
	gids := make(chan string, 1)
	RegisterRaw(app, "tasks.fan", func(ctx context.Context, t *Task) error {
		if err := app.SendRaw(ctx, "tasks.leaf", nil, nil, TaskID("single")); err != nil {
			return err
		}
		g, err := app.ApplyGroup(ctx, withID(Sig("tasks.leaf"), "g1"), withID(Sig("tasks.leaf"), "g2"))
		if err != nil {
			return err
		}
		gids <- g.ID
		_, err = app.Apply(ctx, ChordSig([]*Signature{withID(Sig("tasks.leaf"), "h1"), withID(Sig("tasks.leaf"), "h2")},
			withID(Sig("tasks.leaf"), "body")))
		return err
	})
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "tasks.fan", nil, nil, TaskID("fan")); err != nil {
		t.Fatal(err)
	}
	runs := receiveN(t, ctx, leaves, 6, func(r leafRun) string { return r.id })
	for _, id := range []string{"single", "g1", "g2", "h1", "h2"} {
		if runs[id].parent != "fan" {
			t.Errorf("%s: parent %q, want fan", id, runs[id].parent)
		}
	}
	gid, chordID := <-gids, runs["h1"].group
	want := `[[["single", null], null], ` +
		`[["` + gid + `", null], [[["g1", null], null], [["g2", null], null]]], ` +
		`[["` + chordID + `", null], [[["h1", null], null], [["h2", null], null]]]]`
	var meta Meta
	eventually(t, "fan done", func() bool {
		var err error
		meta, err = app.Result("fan").Meta(ctx)
		return err == nil && meta.State.Ready()
	})
	if string(meta.Children) != want {
		t.Errorf("children %s\nwant     %s", meta.Children, want)
	}
}

// What a worker applies after a task succeeds is listed in its result's
// children, as Celery's tracer does: the next chain step, and the
// callbacks (a plain one alone, several plain ones as one group).
func TestNextChainStepAndCallbacksListedInResult(t *testing.T) {
	app := newApp(t, Config{})
	RegisterRaw(app, "tasks.step", func(_ context.Context, t *Task) error { t.Return([]byte("1")); return nil })
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	withID := func(s *Signature, id string) *Signature { s.Options.TaskID = id; return s }

	last, err := app.ApplyChain(ctx, withID(Sig("tasks.step"), "c1"), withID(Sig("tasks.step"), "c2"), withID(Sig("tasks.step"), "c3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := last.Get(ctx); err != nil {
		t.Fatal(err)
	}
	one := withID(Sig("tasks.step"), "linked-one")
	one.Options.Link = []codec.Signature{*withID(Sig("tasks.step"), "cb")}
	two := withID(Sig("tasks.step"), "linked-two")
	two.Options.Link = []codec.Signature{*withID(Sig("tasks.step"), "cb-a"), *withID(Sig("tasks.step"), "cb-b")}
	for _, s := range []*Signature{one, two} {
		r, err := app.Apply(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The tuples' shape, as Celery writes it.
	if meta, err := app.Result("c1").Meta(ctx); err != nil || string(meta.Children) != `[[["c2", null], null]]` {
		t.Fatalf("c1: children %s, %v", meta.Children, err)
	}
	for _, c := range []struct{ id, want string }{
		{"c2", "c3"},
		{"c3", ""},
		{"linked-one", "cb"},
		{"linked-two", "group[cb-a cb-b]"}, // the group's id is new
	} {
		meta, err := app.Result(c.id).Meta(ctx)
		if err != nil {
			t.Fatal(err)
		}
		refs, err := codec.DecodeChildren(meta.Children)
		if err != nil {
			t.Fatalf("%s: children %s: %v", c.id, meta.Children, err)
		}
		var got []string
		for _, r := range refs {
			if !r.IsGroup {
				got = append(got, string(r.ID))
				continue
			}
			var members []string
			for _, m := range r.Children {
				members = append(members, string(m.ID))
			}
			got = append(got, "group"+fmt.Sprint(members))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: children %s, want %s", c.id, meta.Children, c.want)
		}
	}
}

// A cold shutdown returns even when a running task ignores its cancelled
// context: after coldGrace the worker leaves the task behind and closes
// its consumer, which puts the unacknowledged message back in the queue.
// Before, Run waited for the task forever, and so did `celerity worker`
// after a second Ctrl-C.
func TestColdShutdownReturnsWhenATaskIgnoresItsContext(t *testing.T) {
	for _, how := range []string{"shutdown timeout", "terminate"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			broker := memory.NewBroker()
			app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend(), TaskAcksLate: true})
			started, release := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { close(release) })
			RegisterRaw(app, "t.stubborn", func(context.Context, *Task) error {
				close(started)
				<-release // ignores ctx
				return nil
			})
			timeout := time.Hour
			if how == "shutdown timeout" {
				timeout = 50 * time.Millisecond
			}
			w, err := app.Worker(WorkerConfig{Concurrency: 1, ShutdownTimeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			if err := app.SendRaw(testCtx(t, 10*time.Second), "t.stubborn", nil, nil); err != nil {
				t.Fatal(err)
			}
			<-started
			cancel() // warm shutdown
			if how == "terminate" {
				time.Sleep(20 * time.Millisecond)
				w.Terminate() // a second Ctrl-C
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(coldGrace + 10*time.Second):
				t.Fatal("Run did not return after a cold shutdown")
			}
			if n := broker.Len("celery"); n != 1 {
				t.Fatalf("%d messages back in the queue, want the stubborn task's", n)
			}
		})
	}
}

// TestExtendedRecordsOfTasksThatDidNotRun: with result_extended, the
// records of an expired task and of an undecodable one describe their
// request (name, args, kwargs, worker, retries, queue) as Celery 5.2.6
// stores them; an unregistered task's have every one of those fields
// null, as Celery's (checked against a real worker).
func TestExtendedRecordsOfTasksThatDidNotRun(t *testing.T) {
	t.Parallel()
	backend := memory.NewBackend()
	app := newApp(t, Config{Backend: backend, ResultExtended: true, Hostname: "ext@host"})
	Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)

	record := func(id string) string {
		t.Helper()
		res := app.Result(id)
		if _, err := res.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		raw, ok, err := backend.GetResult(ctx, id, nil)
		if err != nil || !ok {
			t.Fatalf("%s: no record (%v)", id, err)
		}
		var r codec.Result
		if err := codec.DecodeResultJSON(raw, &r); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s %s args=%s kwargs=%s worker=%s retries=%d queue=%s",
			r.State, r.Name, r.Args, r.Kwargs, r.Worker, r.Retries, r.Queue)
	}

	if _, err := app.SendTask(ctx, "t.add", []any{1, 2}, map[string]any{}, TaskID("expired-1"), ExpiresAt(time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got, want := record("expired-1"), "REVOKED t.add args=[1,2] kwargs={} worker=ext@host retries=0 queue=celery"; got != want {
		t.Errorf("expired:\n got %s\nwant %s", got, want)
	}
	if _, err := app.SendTask(ctx, "t.nosuch", []any{1}, map[string]any{"k": 2}, TaskID("unknown-1")); err != nil {
		t.Fatal(err)
	}
	if got, want := record("unknown-1"), "FAILURE  args= kwargs= worker= retries=-1 queue="; got != want {
		t.Errorf("unregistered:\n got %s\nwant %s", got, want)
	}
	raw, _, _ := backend.GetResult(ctx, "unknown-1", nil)
	if !bytes.Contains(raw, []byte(`"name": null, "args": null, "kwargs": null, "worker": null, "retries": null, "queue": null`)) {
		t.Errorf("unregistered record: %s", raw)
	}
}

// TestIntrospectionWhileTheWorkerStarts: Reserved, Scheduled, PoolSize and
// ResizePool may be called from other goroutines (the control server does)
// while Run is still building the pool; under -race this caught them
// reading the pool and ETA queue as Run wrote them.
func TestIntrospectionWhileTheWorkerStarts(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	w, err := app.Worker(WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	app.AddHooks(Hooks{WorkerReady: func(*Worker) { close(ready) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	looked := make(chan struct{})
	go func() {
		defer close(looked)
		for {
			_, _, _ = w.Reserved(), w.Scheduled(), w.PoolSize()
			select {
			case <-ready:
				if err := w.ResizePool(3); err != nil || w.PoolSize() != 3 {
					t.Errorf("ResizePool(3) once running: %v, size %d", err, w.PoolSize())
				}
				return
			default:
			}
		}
	}()
	go func() { done <- w.Run(ctx) }()
	<-looked
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
