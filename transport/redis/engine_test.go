package redis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport/redis"
)

// quiet is a logger for tests that expect warnings (lost connections).
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newApp returns an engine app on a Redis broker and backend at raw (no key
// prefix unless opts give one), closed with t.
func newApp(t testing.TB, raw string, cfg engine.Config, opts ...redis.Option) (*engine.App, *redis.Broker, *redis.Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.NewBroker(ctx, raw, opts...)
	if err != nil {
		t.Fatal(err)
	}
	be, err := redis.NewBackend(ctx, raw, opts...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker, cfg.Backend = b, be
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	app, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		app.Close()
		b.Close()
		be.Close()
	})
	return app, b, be
}

// runWorker runs a worker until the test ends; stop ends it earlier.
func runWorker(t testing.TB, app *engine.App, cfg engine.WorkerConfig) (w *engine.Worker, stop func()) {
	t.Helper()
	w, err := app.Worker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("worker: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("worker did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return w, stop
}

// interopTasks registers the shared interop app's tasks (py_app.py) in Go,
// plus interop.retry. Handlers call seen (if not nil) with the task.
func interopTasks(app *engine.App, seen func(t *engine.Task)) {
	note := func(t *engine.Task) {
		if seen != nil {
			seen(t)
		}
	}
	arith := func(name string, mul bool) {
		engine.RegisterRaw(app, name, func(ctx context.Context, t *engine.Task) error {
			note(t)
			var args []json.Number
			if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 2 {
				return fmt.Errorf("%s wants [x, y], got %s", name, t.Args())
			}
			v, err := addNumbers(args[0], args[1], mul)
			if err != nil {
				return err
			}
			t.Return([]byte(v))
			return nil
		})
	}
	arith("interop.add", false)
	arith("interop.mul", true)
	engine.RegisterRaw(app, "interop.xsum", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args [][]json.Number
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.xsum wants [[numbers]], got %s", t.Args())
		}
		sum := json.Number("0")
		for _, x := range args[0] {
			var err error
			if sum, err = addNumbers(sum, x, false); err != nil {
				return err
			}
		}
		t.Return([]byte(sum))
		return nil
	})
	engine.RegisterRaw(app, "interop.fail", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []any
		json.Unmarshal(t.Args(), &args)
		msg := "interop failure"
		if len(args) > 0 {
			msg = fmt.Sprint(args[0])
		}
		return &engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{msg}}
	})
	engine.RegisterRaw(app, "interop.sleep", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []json.Number
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.sleep wants [seconds], got %s", t.Args())
		}
		s, _ := args[0].Float64()
		select {
		case <-time.After(time.Duration(s * float64(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
		t.Return([]byte(args[0]))
		return nil
	})
	engine.RegisterRaw(app, "interop.echo", func(ctx context.Context, t *engine.Task) error {
		note(t)
		t.Return([]byte(`{"args": ` + string(t.Args()) + `, "kwargs": ` + string(t.Kwargs()) + `}`))
		return nil
	})
	engine.RegisterRaw(app, "interop.retry", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []int
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.retry wants [times], got %s", t.Args())
		}
		if t.Retries < args[0] {
			return t.Retry(errors.New("again"), 100*time.Millisecond)
		}
		return t.ReturnValue(t.Retries)
	})
}

func addNumbers(x, y json.Number, mul bool) (json.Number, error) {
	if a, err := x.Int64(); err == nil {
		if b, err := y.Int64(); err == nil {
			if mul {
				return json.Number(fmt.Sprint(a * b)), nil
			}
			return json.Number(fmt.Sprint(a + b)), nil
		}
	}
	a, err1 := x.Float64()
	b, err2 := y.Float64()
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	if mul {
		return json.Number(fmt.Sprint(a * b)), nil
	}
	return json.Number(fmt.Sprint(a + b)), nil
}

// TestEngineRoundTrip runs tasks through a celerity worker on Redis: send,
// run, result by pub/sub; a failure; a countdown task.
func TestEngineRoundTrip(t *testing.T) {
	t.Parallel()
	prefix := "ct-engine-" + strings.ReplaceAll(t.Name(), "/", "-") + "-"
	raw := testURL(t)
	t.Cleanup(func() { deletePrefix(t, raw, prefix) })
	app, _, _ := newApp(t, raw, engine.Config{TaskAcksLate: true},
		redis.WithGlobalKeyPrefix(prefix), redis.WithResultKeyPrefix(prefix))
	interopTasks(app, nil)
	runWorker(t, app, engine.WorkerConfig{Concurrency: 4})
	ctx := ctxT(t, 20*time.Second)
	res, err := app.SendTask(ctx, "interop.add", []any{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "5" {
		t.Fatalf("add = %v, %v", v, err)
	}
	res, _ = app.SendTask(ctx, "interop.fail", []any{"nope"}, nil)
	if _, err := res.Get(ctx); !engine.IsTaskError(err, "ValueError") {
		t.Fatalf("fail: %v", err)
	}
	start := time.Now()
	res, _ = app.SendTask(ctx, "interop.add", []any{1, 1}, nil, engine.Countdown(500*time.Millisecond))
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "2" {
		t.Fatalf("countdown add = %v, %v", v, err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("countdown task ran after %v", el)
	}
}
