package redis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/interoptest"
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

// TestEngineRoundTrip runs tasks through a celerity worker on Redis: send,
// run, result by pub/sub; a failure; a countdown task.
func TestEngineRoundTrip(t *testing.T) {
	t.Parallel()
	prefix := "ct-engine-" + strings.ReplaceAll(t.Name(), "/", "-") + "-"
	raw := testURL(t)
	t.Cleanup(func() { deletePrefix(t, raw, prefix) })
	app, _, _ := newApp(t, raw, engine.Config{TaskAcksLate: true},
		redis.WithGlobalKeyPrefix(prefix), redis.WithResultKeyPrefix(prefix))
	interoptest.RegisterTasks(app, nil)
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
