package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// startWorker runs a worker of app in the background until the test ends
// (or stop is called) and returns it.
func startWorker(t *testing.T, app *App, cfg WorkerConfig) (w *Worker, stop func()) {
	t.Helper()
	w, err := app.Worker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker.Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	return w, stop
}

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newApp(t *testing.T, cfg Config) *App {
	t.Helper()
	if cfg.Logger == nil && !testing.Verbose() {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	app, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

// receiveN takes values from ch until n distinct keys arrived, keyed by
// key, and fails the test if ctx ends first.
func receiveN[T any](t *testing.T, ctx context.Context, ch <-chan T, n int, key func(T) string) map[string]T {
	t.Helper()
	got := map[string]T{}
	for len(got) < n {
		select {
		case v := <-ch:
			got[key(v)] = v
		case <-ctx.Done():
			t.Fatalf("received %d of %d: %v", len(got), n, got)
		}
	}
	return got
}
