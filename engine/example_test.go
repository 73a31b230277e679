package engine_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/celerity-go/celerity/engine"
)

// Define a task, run a worker in-process on the memory transport, send
// the task and read its result.
func Example() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	add := engine.Register2(app, "tasks.add", func(_ context.Context, a, b int) (int, error) {
		return a + b, nil
	})

	w, _ := app.Worker(engine.WorkerConfig{Concurrency: 2})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()

	res, _ := add.Delay(ctx, 2, 3)
	sum, err := res.Get(ctx)
	fmt.Println(sum, err)
	// Output: 5 <nil>
}

// A task that fails until its third attempt, retried after a countdown as
// Celery's self.retry does.
func ExampleRetry() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	engine.RegisterRaw(app, "tasks.flaky", func(_ context.Context, t *engine.Task) error {
		if t.Retries < 2 {
			return engine.Retry(errors.New("service unavailable"), 10*time.Millisecond)
		}
		t.Return([]byte(`"ok after retries"`))
		return nil
	})
	w, _ := app.Worker(engine.WorkerConfig{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()

	res, _ := app.SendTask(ctx, "tasks.flaky", nil, nil)
	v, err := res.Get(ctx)
	fmt.Println(v, err)
	// Output: ok after retries <nil>
}

// Options choose queue, ETA, expiry and more for one call.
func ExampleCountdown() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	ping := engine.Register0(app, "tasks.ping", func(context.Context) (string, error) { return "pong", nil })
	w, _ := app.Worker(engine.WorkerConfig{Queues: []string{"celery", "urgent"}})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()

	start := time.Now()
	res, _ := ping.ApplyAsync(ctx, engine.Countdown(50*time.Millisecond), engine.Queue("urgent"), engine.ExpiresIn(time.Minute))
	v, _ := res.Get(ctx)
	fmt.Println(v, time.Since(start) >= 50*time.Millisecond)
	// Output: pong true
}
