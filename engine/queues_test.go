package engine

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transport/memory"
)

// noopApp returns an app with a task q.noop (results ignored) that counts
// its runs.
func noopApp(t *testing.T) (*App, *atomic.Int64) {
	app := newApp(t, Config{})
	ran := new(atomic.Int64)
	RegisterRaw(app, "q.noop", func(context.Context, *Task) error {
		ran.Add(1)
		return nil
	}, TaskIgnoreResult(true))
	return app, ran
}

// TestWorkerQueuesChangeAtRuntime: AddQueue makes a running worker take
// tasks from a new queue; after CancelQueue its tasks stay in the queue,
// and AddQueue brings it back.
func TestWorkerQueuesChangeAtRuntime(t *testing.T) {
	app, ran := noopApp(t)
	w, _ := startWorker(t, app, WorkerConfig{Queues: []string{"a", "a"}})
	ctx := testCtx(t, 20*time.Second)
	send := func(queue string) {
		t.Helper()
		if err := app.SendRaw(ctx, "q.noop", nil, nil, Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
	broker := app.Broker().(*memory.Broker)

	send("b")
	time.Sleep(100 * time.Millisecond)
	if ran.Load() != 0 || broker.Len("b") != 1 {
		t.Fatalf("before AddQueue: ran %d, queue b holds %d; want 0 and 1", ran.Load(), broker.Len("b"))
	}
	if err := w.AddQueue(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task on b to run", func() bool { return ran.Load() == 1 })
	if got := w.Queues(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Queues() = %v, want [a b]", got)
	}

	if err := w.CancelQueue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	send("a")
	send("b")
	eventually(t, "the task on b to run", func() bool { return ran.Load() == 2 })
	time.Sleep(100 * time.Millisecond)
	if ran.Load() != 2 || broker.Len("a") != 1 {
		t.Fatalf("after CancelQueue(a): ran %d, queue a holds %d; want 2 and 1", ran.Load(), broker.Len("a"))
	}
	if got := w.Queues(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Queues() = %v, want [b]", got)
	}

	if err := w.AddQueue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task left on a to run", func() bool { return ran.Load() == 3 })
}

// TestWorkerAddQueueBeforeRun: a queue added before Run is consumed from
// the start.
func TestWorkerAddQueueBeforeRun(t *testing.T) {
	app, ran := noopApp(t)
	w, err := app.Worker(WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 20*time.Second)
	if err := w.AddQueue(ctx, "extra"); err != nil {
		t.Fatal(err)
	}
	if err := w.CancelQueue(ctx, "celery"); err != nil {
		t.Fatal(err)
	}
	if err := app.SendRaw(ctx, "q.noop", nil, nil, Queue("extra")); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	eventually(t, "the task on extra to run", func() bool { return ran.Load() == 1 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.Queues(); !slices.Equal(got, []string{"extra"}) {
		t.Fatalf("Queues() = %v, want [extra]", got)
	}
}
