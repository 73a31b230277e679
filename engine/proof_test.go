package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
)

// Tests that prove features the engine has, each failing if its feature
// broke. All run on the memory transport, each on its own broker and
// backend.

// TestRetryJitterSpreadsCountdownsOverZeroToFull proves retry_jitter: as
// Celery's get_exponential_backoff_interval (random.randrange(countdown +
// 1)), a jittered countdown is a whole number of seconds drawn uniformly
// from [0, full], full being the un-jittered backoff capped at
// retry_backoff_max. Drawn 300 times, the countdowns must cover every
// whole second of [0, full] (or, for a 600 s cap, spread over it) and
// never leave it; a jitter that returned the full value, or drew from a
// narrower range, fails.
func TestRetryJitterSpreadsCountdownsOverZeroToFull(t *testing.T) {
	t.Parallel()
	w := &Worker{app: newApp(t, Config{})}
	for _, c := range []struct {
		name           string
		base, maxDelay time.Duration
		retries        int
		full           time.Duration // the un-jittered countdown
	}{
		{"doubled", time.Second, 0, 3, 8 * time.Second},
		{"capped by retry_backoff_max", time.Second, 5 * time.Second, 10, 5 * time.Second},
		{"capped at the default 600s", 2 * time.Second, 0, 20, 600 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			def := &taskDef{opts: taskOptions{retryBackoff: c.base, retryBackoffMax: c.maxDelay}}
			if got := w.backoff(def, c.retries); got != c.full {
				t.Fatalf("un-jittered backoff(retries=%d) = %v, want %v", c.retries, got, c.full)
			}
			def.opts.retryJitter = true
			const draws = 300
			seen := map[time.Duration]int{}
			below := 0 // draws under half the full value
			for range draws {
				d := w.backoff(def, c.retries)
				if d < 0 || d > c.full || d%time.Second != 0 {
					t.Fatalf("jittered backoff %v is not a whole number of seconds in [0, %v]", d, c.full)
				}
				seen[d]++
				if d < c.full/2 {
					below++
				}
			}
			if below == 0 || seen[c.full] == draws {
				t.Fatalf("%d draws: none below %v; counts %v", draws, c.full/2, seen)
			}
			if n := int(c.full/time.Second) + 1; n <= 10 {
				// Few values: each appears (a miss has odds below 1e-9).
				if len(seen) != n {
					t.Fatalf("%d draws took %d of the %d values 0..%v: %v", draws, len(seen), n, c.full, seen)
				}
			} else if len(seen) < 100 {
				// 601 values: about 236 distinct ones are expected.
				t.Fatalf("%d draws took only %d distinct values of [0, %v]", draws, len(seen), c.full)
			}
		})
	}
}

// TestRetryAtAnETAIsPublishedWithThatETA proves RetryError.ETA: the retry
// is published with exactly that ETA, runs no earlier, and the retried
// run sees it as Task.ETA. Were the ETA ignored, the retry would wait the
// app's default retry delay (180 s) and the test would time out.
func TestRetryAtAnETAIsPublishedWithThatETA(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	eta := time.Now().Add(300 * time.Millisecond).Round(0).Truncate(time.Millisecond)
	published := make(chan time.Time, 1)
	app.SetHooks(Hooks{BeforePublish: func(m *codec.Message) {
		if m.Retries == 1 && string(m.ID) == "eta-1" {
			published <- m.ETA
		}
	}})
	type rerun struct{ at, eta time.Time }
	reran := make(chan rerun, 1)
	RegisterRaw(app, "proof.eta", func(_ context.Context, task *Task) error {
		if task.Retries == 0 {
			return &RetryError{ETA: eta, Err: errors.New("later")}
		}
		reran <- rerun{time.Now(), task.ETA}
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "proof.eta", nil, nil, TaskID("eta-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Result("eta-1").Get(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-published; !got.Equal(eta) {
		t.Fatalf("retry published with ETA %v, want %v", got, eta)
	}
	r := <-reran
	if r.at.Before(eta) {
		t.Fatalf("retry ran at %v, before its ETA %v", r.at, eta)
	}
	if !r.eta.Equal(eta) {
		t.Fatalf("retried run saw Task.ETA %v, want %v", r.eta, eta)
	}
}

// TestRetryErrorMaxRetriesOverridesTheTasks proves the per-call
// max_retries of RetryError (Celery's self.retry(max_retries=n)): it wins
// over the task's MaxRetries, lower or higher, and once exceeded the task
// fails with the retry's reason.
func TestRetryErrorMaxRetriesOverridesTheTasks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name            string
		task, call, run int // task's max_retries, the call's, runs expected
	}{
		{"lower than the task's", 5, 1, 2},
		{"higher than the task's", 0, 2, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, Config{})
			var runs atomic.Int32
			RegisterRaw(app, "proof.max", func(_ context.Context, task *Task) error {
				runs.Add(1)
				return &RetryError{Countdown: time.Millisecond, MaxRetries: c.call, HasMaxRetries: true,
					Err: &TaskError{Type: "IOError", Module: "builtins", Args: []any{"down"}}}
			}, MaxRetries(c.task))
			startWorker(t, app, WorkerConfig{Concurrency: 1})
			ctx := testCtx(t, 10*time.Second)
			res, err := app.SendTask(ctx, "proof.max", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.Get(ctx); !IsTaskError(err, "IOError") {
				t.Fatalf("err = %v, want the retry reason IOError once max retries are exceeded", err)
			}
			if n := runs.Load(); int(n) != c.run {
				t.Fatalf("ran %d times, want %d (task max_retries %d, call max_retries %d)", n, c.run, c.task, c.call)
			}
		})
	}
}

// TestRetryStateIsStoredWhileTheRetryWaits proves that a retrying task's
// record is RETRY, with the retry's reason as its exception (Celery's
// mark_as_retry), until the retry succeeds, and that RETRY is not ready.
// The retried run waits for the test, so the RETRY record is there to be
// read however slow the machine.
func TestRetryStateIsStoredWhileTheRetryWaits(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	gate := make(chan struct{})
	RegisterRaw(app, "proof.retrying", func(_ context.Context, task *Task) error {
		if task.Retries == 0 {
			return task.Retry(&TaskError{Type: "IOError", Module: "builtins", Args: []any{"disk busy"}}, 300*time.Millisecond)
		}
		<-gate
		task.Return([]byte(`"done"`))
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // before the worker stops, should the test fail
	ctx := testCtx(t, 15*time.Second)
	if err := app.SendRaw(ctx, "proof.retrying", nil, nil, TaskID("retrying-1")); err != nil {
		t.Fatal(err)
	}
	res := ResultOf[string](app, "retrying-1")
	var m Meta
	eventually(t, "RETRY record", func() bool {
		var err error
		m, err = res.Meta(ctx)
		return err == nil && m.State == codec.StateRetry
	})
	if m.StateName != "RETRY" {
		t.Fatalf("StateName %q, want RETRY", m.StateName)
	}
	var te *TaskError
	if err := m.Err(); !errors.As(err, &te) || te.Type != "IOError" || te.Module != "builtins" || fmt.Sprint(te.Args) != "[disk busy]" {
		t.Fatalf("RETRY record's exception = %v (%s), want builtins.IOError('disk busy')", err, m.Result)
	}
	if ready, err := res.Ready(ctx); ready || err != nil {
		t.Fatalf("Ready() = %v, %v during RETRY, want false", ready, err)
	}
	// The retry is sent from inside the task: Celery lists it as a child.
	if want := `[[["retrying-1", null], null]]`; string(m.Children) != want {
		t.Errorf("RETRY record's children %s, want %s", m.Children, want)
	}
	release()
	if v, err := res.Get(ctx); v != "done" || err != nil {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if m, _ := res.Meta(ctx); m.State != codec.StateSuccess || string(m.Children) != "[]" {
		t.Fatalf("state %v, children %s after the retry succeeded, want SUCCESS and none", m.StateName, m.Children)
	}
}

// TestAsyncResultReadyStatesAndForget proves AsyncResult's Ready,
// Successful and Failed against Celery's states (READY_STATES: SUCCESS,
// FAILURE, REVOKED; PENDING for an unknown id) and that Forget deletes the
// record: the task reads as PENDING again and the backend holds nothing.
func TestAsyncResultReadyStatesAndForget(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	RegisterRaw(app, "proof.ok", func(_ context.Context, task *Task) error {
		task.Return([]byte(`1`))
		return nil
	})
	RegisterRaw(app, "proof.bad", func(context.Context, *Task) error { return errors.New("boom") })
	app.Revoke(false, "st-revoked") // discarded when received
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	for id, name := range map[string]string{"st-ok": "proof.ok", "st-bad": "proof.bad", "st-revoked": "proof.ok"} {
		if err := app.SendRaw(ctx, name, nil, nil, TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		id                        string
		state                     codec.State
		ready, successful, failed bool
	}{
		{"st-ok", codec.StateSuccess, true, true, false},
		{"st-bad", codec.StateFailure, true, false, true},
		{"st-revoked", codec.StateRevoked, true, false, false},
		{"st-never-sent", codec.StatePending, false, false, false},
	} {
		r := app.Result(c.id)
		if c.state != codec.StatePending {
			if m, err := r.Wait(ctx); err != nil || m.State != c.state {
				t.Fatalf("%s: Wait = %v, %v; want %v", c.id, m.StateName, err, c.state)
			}
		}
		ready, err1 := r.Ready(ctx)
		ok, err2 := r.Successful(ctx)
		failed, err3 := r.Failed(ctx)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if ready != c.ready || ok != c.successful || failed != c.failed {
			t.Errorf("%s (%v): Ready %v Successful %v Failed %v, want %v %v %v",
				c.id, c.state, ready, ok, failed, c.ready, c.successful, c.failed)
		}
	}
	for _, id := range []string{"st-ok", "st-bad", "st-revoked", "st-never-sent"} {
		r := app.Result(id)
		if err := r.Forget(ctx); err != nil {
			t.Fatalf("Forget(%s): %v", id, err)
		}
		if m, err := r.Meta(ctx); err != nil || m.State != codec.StatePending || m.StateName != "PENDING" {
			t.Fatalf("%s after Forget: %v, %v; want PENDING", id, m.StateName, err)
		}
		if ready, _ := r.Ready(ctx); ready {
			t.Fatalf("%s is ready after Forget", id)
		}
		if _, found, err := app.Backend().GetResult(ctx, id, nil); found || err != nil {
			t.Fatalf("%s: the backend still holds a record after Forget (err %v)", id, err)
		}
	}
}

// seenTask is what a handler copies out of its *Task.
type seenTask struct {
	hostname, queue, exchange, origin string
	eta, expires, at                  time.Time
	redelivered                       bool
}

// TestTaskSeesHostnameETAExpiresAndDeliveryInfo proves what a handler
// reads on its Task (Celery's task.request): the worker's hostname, the
// ETA and expiry the task was sent with (absolute or relative, zero when
// none), the routing key and exchange it was delivered with and the
// sender's node name.
func TestTaskSeesHostnameETAExpiresAndDeliveryInfo(t *testing.T) {
	t.Parallel()
	const host = "proof-worker@host-a"
	app := newApp(t, Config{Hostname: host})
	var mu sync.Mutex
	seen := map[string]seenTask{}
	RegisterRaw(app, "proof.ctx", func(_ context.Context, task *Task) error {
		s := seenTask{
			hostname: strings.Clone(task.Hostname), queue: strings.Clone(task.Queue),
			exchange: strings.Clone(task.Exchange), origin: strings.Clone(task.Origin),
			eta: task.ETA, expires: task.Expires, at: time.Now(), redelivered: task.Redelivered,
		}
		mu.Lock()
		seen[strings.Clone(task.ID)] = s
		mu.Unlock()
		return nil
	})
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1, Queues: []string{"proof.q"}})
	ctx := testCtx(t, 10*time.Second)
	eta := time.Now().Add(100 * time.Millisecond).Round(0).Truncate(time.Millisecond)
	exp := eta.Add(time.Hour)
	before := time.Now()
	sends := []struct {
		id   string
		opts []Option
	}{
		{"ctx-at", []Option{ETA(eta), ExpiresAt(exp), Exchange("proof.ex"), RoutingKey("proof.q")}},
		{"ctx-in", []Option{Countdown(50 * time.Millisecond), ExpiresIn(time.Hour), Queue("proof.q")}},
		{"ctx-plain", []Option{Queue("proof.q")}},
	}
	for _, s := range sends {
		if err := app.SendRaw(ctx, "proof.ctx", nil, nil, append(s.opts, TaskID(s.id))...); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now()
	for _, s := range sends {
		if _, err := app.Result(s.id).Get(ctx); err != nil {
			t.Fatalf("%s: %v", s.id, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, s := range seen {
		if s.hostname != host || w.Hostname() != host {
			t.Errorf("%s: Hostname %q (worker %q), want %q", id, s.hostname, w.Hostname(), host)
		}
		if s.queue != "proof.q" || s.origin != string(origin) || s.redelivered {
			t.Errorf("%s: Queue %q Origin %q Redelivered %v, want proof.q, %q, false", id, s.queue, s.origin, s.redelivered, origin)
		}
	}
	if len(seen) != len(sends) {
		t.Fatalf("saw %d runs, want %d: %v", len(seen), len(sends), seen)
	}
	at := seen["ctx-at"]
	if !at.eta.Equal(eta) || !at.expires.Equal(exp) || at.exchange != "proof.ex" || at.at.Before(eta) {
		t.Errorf("ETA/ExpiresAt/Exchange: saw ETA %v Expires %v Exchange %q, ran at %v; want %v, %v, proof.ex, not before the ETA",
			at.eta, at.expires, at.exchange, at.at, eta, exp)
	}
	in := seen["ctx-in"]
	within := func(v, lo, hi time.Time) bool { return !v.Before(lo) && !v.After(hi) }
	if !within(in.eta, before.Add(50*time.Millisecond), after.Add(50*time.Millisecond)) ||
		!within(in.expires, before.Add(time.Hour), after.Add(time.Hour)) || in.exchange != "" {
		t.Errorf("Countdown/ExpiresIn/Queue: saw ETA %v Expires %v Exchange %q; want send time + 50ms, + 1h, \"\"",
			in.eta, in.expires, in.exchange)
	}
	if plain := seen["ctx-plain"]; !plain.eta.IsZero() || !plain.expires.IsZero() {
		t.Errorf("a task sent without ETA or expiry saw ETA %v Expires %v, want zero", plain.eta, plain.expires)
	}
}

// wireMessage is the part of kombu's Redis envelope the send options
// show in.
type wireMessage struct {
	Headers    map[string]any `json:"headers"`
	Properties struct {
		DeliveryInfo struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"delivery_info"`
	} `json:"properties"`
}

// TestSendOptionsLandOnTheWire proves that custom headers, routing key,
// exchange and ignore_result reach the message as Celery writes it (each
// message is rendered as kombu's Redis envelope when published), that a
// worker's handler sees the custom headers, and that ignore_result works
// per call: the task sent with it stores no result, the same task sent
// without it does.
func TestSendOptionsLandOnTheWire(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	wire := map[string][]byte{}
	done := make(chan string, 3)
	app.SetHooks(Hooks{
		BeforePublish: func(m *codec.Message) {
			mu.Lock()
			wire[string(m.ID)] = codec.AppendRedisEnvelope(nil, m)
			mu.Unlock()
		},
		TaskPostrun: func(task *Task, _ codec.State) { done <- strings.Clone(task.ID) },
	})
	var extra atomic.Value // the custom headers the handler saw
	RegisterRaw(app, "proof.wire", func(_ context.Context, task *Task) error {
		if task.ID == "wire-headers" {
			extra.Store(string(task.Message().ExtraHeaders))
		}
		task.Return([]byte(`"ok"`))
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 1, Queues: []string{"celery", "proof.rk"}})
	ctx := testCtx(t, 10*time.Second)
	sends := []struct {
		id   string
		opts []Option
	}{
		{"wire-headers", []Option{Headers(map[string]any{"x-trace": "abc-123", "tenant": 7}), Exchange("proof.ex"), RoutingKey("proof.rk")}},
		{"wire-ignored", []Option{IgnoreResult(true)}},
		{"wire-kept", nil},
	}
	for _, s := range sends {
		if err := app.SendRaw(ctx, "proof.wire", nil, nil, append(s.opts, TaskID(s.id))...); err != nil {
			t.Fatal(err)
		}
	}
	receiveN(t, ctx, done, len(sends), func(id string) string { return id })

	mu.Lock()
	msgs := map[string]wireMessage{}
	for id, env := range wire {
		var w wireMessage
		if err := json.Unmarshal(env, &w); err != nil {
			t.Fatalf("%s: envelope %s: %v", id, env, err)
		}
		msgs[id] = w
	}
	mu.Unlock()
	h := msgs["wire-headers"]
	if h.Headers["x-trace"] != "abc-123" || h.Headers["tenant"] != float64(7) {
		t.Errorf("custom headers on the wire: %v", h.Headers)
	}
	if di := h.Properties.DeliveryInfo; di.Exchange != "proof.ex" || di.RoutingKey != "proof.rk" {
		t.Errorf("delivery_info %+v, want exchange proof.ex, routing_key proof.rk", di)
	}
	if di := msgs["wire-kept"].Properties.DeliveryInfo; di.Exchange != "" || di.RoutingKey != "celery" {
		t.Errorf("default delivery_info %+v, want exchange \"\", routing_key celery", di)
	}
	if got, _ := extra.Load().(string); !strings.Contains(got, `"x-trace"`) || !strings.Contains(got, `"abc-123"`) {
		t.Errorf("the handler saw extra headers %q, want x-trace", got)
	}
	for id, want := range map[string]bool{"wire-headers": false, "wire-ignored": true, "wire-kept": false} {
		if got := msgs[id].Headers["ignore_result"]; got != want {
			t.Errorf("%s: ignore_result header %v, want %v", id, got, want)
		}
	}
	if m, err := app.Result("wire-kept").Meta(ctx); err != nil || m.State != codec.StateSuccess {
		t.Errorf("wire-kept: %v, %v; want SUCCESS stored", m.StateName, err)
	}
	if _, found, err := app.Backend().GetResult(ctx, "wire-ignored", nil); found || err != nil {
		t.Errorf("wire-ignored: a result was stored (err %v) for a task sent with ignore_result", err)
	}
}

// TestHookTaskRetry proves the task_retry signal: TaskRetry runs once per
// retry with the retrying run's task (id, name, retries) and the retry's
// reason, for an explicit Retry and for autoretry_for.
func TestHookTaskRetry(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	type retried struct {
		id, name string
		retries  int
		err      error
	}
	got := make(chan retried, 4)
	app.SetHooks(Hooks{TaskRetry: func(task *Task, err error) {
		got <- retried{strings.Clone(task.ID), strings.Clone(task.Name), task.Retries, err}
	}})
	errNotYet, errFlaky := errors.New("not yet"), errors.New("flaky")
	RegisterRaw(app, "proof.retry", func(_ context.Context, task *Task) error {
		if task.Retries == 0 {
			return task.Retry(errNotYet, time.Millisecond)
		}
		return nil
	})
	RegisterRaw(app, "proof.autoretry", func(_ context.Context, task *Task) error {
		if task.Retries == 0 {
			return errFlaky
		}
		return nil
	}, AutoRetryFor(func(err error) bool { return errors.Is(err, errFlaky) }), DefaultRetryDelay(time.Millisecond))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	want := map[string]retried{
		"hr-explicit": {"hr-explicit", "proof.retry", 0, errNotYet},
		"hr-auto":     {"hr-auto", "proof.autoretry", 0, errFlaky},
	}
	for id, w := range want {
		if err := app.SendRaw(ctx, w.name, nil, nil, TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for id := range want {
		if _, err := app.Result(id).Get(ctx); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	close(got)
	n := 0
	for r := range got {
		n++
		w := want[r.id]
		if r.name != w.name || r.retries != w.retries || !errors.Is(r.err, w.err) {
			t.Errorf("TaskRetry(%s %s retries=%d, %v), want (%s %s retries=%d, %v)",
				r.id, r.name, r.retries, r.err, w.id, w.name, w.retries, w.err)
		}
	}
	if n != len(want) {
		t.Fatalf("TaskRetry ran %d times, want %d (once per retry)", n, len(want))
	}
}

// TestHookTaskRevoked proves the task_revoked signal: TaskRevoked names
// the task and the reason, for a task revoked before it arrived
// ("revoked"), one past its expiry ("expired") and a running one revoked
// with terminate ("terminated").
func TestHookTaskRevoked(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var mu sync.Mutex
	reasons := map[string][]string{}
	app.SetHooks(Hooks{TaskRevoked: func(id []byte, reason string) {
		mu.Lock()
		reasons[string(id)] = append(reasons[string(id)], reason)
		mu.Unlock()
	}})
	started := make(chan struct{})
	RegisterRaw(app, "proof.block", func(ctx context.Context, task *Task) error {
		close(started)
		<-ctx.Done()
		return context.Cause(ctx)
	})
	var ran atomic.Int32
	RegisterRaw(app, "proof.never", func(context.Context, *Task) error { ran.Add(1); return nil })
	app.Revoke(false, "hv-revoked")
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "proof.never", nil, nil, TaskID("hv-revoked")); err != nil {
		t.Fatal(err)
	}
	if err := app.SendRaw(ctx, "proof.never", nil, nil, TaskID("hv-expired"), ExpiresAt(time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := app.SendRaw(ctx, "proof.block", nil, nil, TaskID("hv-terminated")); err != nil {
		t.Fatal(err)
	}
	<-started
	app.Revoke(true, "hv-terminated")
	for _, id := range []string{"hv-revoked", "hv-expired", "hv-terminated"} {
		if _, err := app.Result(id).Get(ctx); !errors.Is(err, ErrRevoked) {
			t.Fatalf("%s: %v, want ErrRevoked", id, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]string{"hv-revoked": "revoked", "hv-expired": "expired", "hv-terminated": "terminated"} {
		if got := reasons[id]; len(got) != 1 || got[0] != want {
			t.Errorf("TaskRevoked for %s: %v, want once with %q", id, got, want)
		}
	}
	if len(reasons) != 3 || ran.Load() != 0 {
		t.Errorf("TaskRevoked calls %v, revoked tasks run %d times", reasons, ran.Load())
	}
}

// TestHookTaskReceived proves the task_received signal: TaskReceived runs
// for a known task's message as it is received, before its ETA (the task
// sent for an hour from now is reported though it does not run), and not
// for a task the worker does not know.
func TestHookTaskReceived(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	received := make(chan [2]string, 4) // id, task name
	app.SetHooks(Hooks{TaskReceived: func(m *codec.Message) { received <- [2]string{string(m.ID), string(m.Task)} }})
	var ran atomic.Int32
	RegisterRaw(app, "proof.later", func(context.Context, *Task) error { ran.Add(1); return nil })
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "proof.unknown", nil, nil, TaskID("hr-unknown")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the unknown task rejected", func() bool { return w.Stats().Rejected.Load() == 1 })
	if err := app.SendRaw(ctx, "proof.later", nil, nil, TaskID("hr-later"), Countdown(time.Hour)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-received:
		if got != [2]string{"hr-later", "proof.later"} {
			t.Fatalf("TaskReceived(%v), want hr-later proof.later (and nothing for the unknown task)", got)
		}
	case <-ctx.Done():
		t.Fatal("TaskReceived did not run for a task held for its ETA")
	}
	if ran.Load() != 0 {
		t.Fatal("the task held for an hour ran")
	}
	if len(received) != 0 {
		t.Fatalf("TaskReceived ran again: %v", <-received)
	}
}

// TestHookTaskRejectedNamesTheMessage proves that TaskRejected gets the
// rejected message and the reason: ErrNotRegistered for an unknown task,
// the handler's *RejectError for a task that rejects itself.
func TestHookTaskRejectedNamesTheMessage(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	type rejected struct {
		id, task string
		reason   error
	}
	got := make(chan rejected, 4)
	app.SetHooks(Hooks{TaskRejected: func(m *codec.Message, reason error) {
		got <- rejected{string(m.ID), string(m.Task), reason}
	}})
	RegisterRaw(app, "proof.reject", func(context.Context, *Task) error { return Reject("bad input", false) }, AcksLate(true))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	for id, name := range map[string]string{"rj-unknown": "proof.unknown", "rj-self": "proof.reject"} {
		if err := app.SendRaw(ctx, name, nil, nil, TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	all := receiveN(t, ctx, got, 2, func(r rejected) string { return r.id })
	if r := all["rj-unknown"]; r.task != "proof.unknown" || !errors.Is(r.reason, ErrNotRegistered) {
		t.Errorf("unknown task: TaskRejected(%s, %v), want proof.unknown, ErrNotRegistered", r.task, r.reason)
	}
	var re *RejectError
	if r := all["rj-self"]; r.task != "proof.reject" || !errors.As(r.reason, &re) || re.Reason != "bad input" || re.Requeue {
		t.Errorf("self-rejected task: TaskRejected(%s, %v), want proof.reject, Reject(bad input, false)", r.task, r.reason)
	}
}

// TestHookWorkerShutdown proves the worker_shutdown signal: WorkerShutdown
// runs once, with the worker, when it stops, and only after its warm
// shutdown let the running task finish.
func TestHookWorkerShutdown(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var finished atomic.Bool
	type shutdown struct {
		w             *Worker
		afterFinished bool
	}
	calls := make(chan shutdown, 2)
	app.SetHooks(Hooks{WorkerShutdown: func(w *Worker) { calls <- shutdown{w, finished.Load()} }})
	started, gate := make(chan struct{}), make(chan struct{})
	RegisterRaw(app, "proof.inflight", func(context.Context, *Task) error {
		close(started)
		<-gate
		finished.Store(true)
		return nil
	})
	w, stop := startWorker(t, app, WorkerConfig{Concurrency: 1})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // before the worker stops, should the test fail
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "proof.inflight", nil, nil); err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case c := <-calls:
		t.Fatalf("WorkerShutdown ran while a task was still running (finished %v)", c.afterFinished)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("the worker did not stop")
	}
	if len(calls) != 1 {
		t.Fatalf("WorkerShutdown ran %d times, want once", len(calls))
	}
	if c := <-calls; c.w != w || !c.afterFinished {
		t.Fatalf("WorkerShutdown(%p) after the task finished: %v; want the worker %p, true", c.w, c.afterFinished, w)
	}
}
