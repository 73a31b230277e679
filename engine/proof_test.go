package engine

import (
	"context"
	"errors"
	"fmt"
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
	release()
	if v, err := res.Get(ctx); v != "done" || err != nil {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if m, _ := res.Meta(ctx); m.State != codec.StateSuccess {
		t.Fatalf("state %v after the retry succeeded, want SUCCESS", m.StateName)
	}
}
