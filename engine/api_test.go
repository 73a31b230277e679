package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport/memory"
)

func TestRegister3AndSignatureKwargs(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	join := Register3(app, "api.join", func(_ context.Context, a string, b int, c bool) (string, error) {
		return fmt.Sprint(a, b, c), nil
	}, Params("a", "b", "c"))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	r, err := join.Delay(ctx, "x", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx); v != "x2 true" || err != nil {
		t.Fatalf("Register3: %q, %v", v, err)
	}
	s := WithKwargs(Sig("api.join", "y"), map[string]any{"b": 3, "c": false})
	res, err := app.Apply(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); v != "y3 false" || err != nil {
		t.Fatalf("signature with kwargs: %v, %v", v, err)
	}
	if join.Name() != "api.join" {
		t.Fatalf("Name() = %q", join.Name())
	}
}

func TestRejectDropsOrRequeues(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
	var runs atomic.Int32
	RegisterRaw(app, "api.reject", func(_ context.Context, task *Task) error {
		if runs.Add(1) == 1 {
			return Reject("try again", true) // requeued: runs a second time
		}
		return Reject("give up", false) // dropped: no result
	}, AcksLate(true))
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "api.reject", nil, nil, TaskID("rej-1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two runs", func() bool { return runs.Load() == 2 && w.Stats().Rejected.Load() == 2 })
	time.Sleep(20 * time.Millisecond)
	if runs.Load() != 2 || broker.Len("celery") != 0 {
		t.Fatalf("runs %d, queue %d: a dropped rejection must not come back", runs.Load(), broker.Len("celery"))
	}
	if m, _ := app.Result("rej-1").Meta(ctx); m.State != codec.StatePending {
		t.Fatalf("a rejected task stored %v", m.StateName)
	}
}

func TestSendOptionsShadowRetriesAndRetryDelay(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{})
	var seen atomic.Value
	app.SetHooks(Hooks{BeforePublish: func(m *codec.Message) {
		seen.Store(fmt.Sprintf("%s %d", m.Shadow, m.Retries))
	}})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "api.x", nil, nil, Shadow("nicer-name"), Retries(4)); err != nil {
		t.Fatal(err)
	}
	if got := seen.Load(); got != "nicer-name 4" {
		t.Fatalf("shadow/retries headers: %v", got)
	}
	var runs atomic.Int32
	RegisterRaw(app, "api.delay", func(_ context.Context, task *Task) error {
		if runs.Add(1) == 1 {
			return task.Retry(nil, 0) // 0: the task's default retry delay
		}
		return nil
	}, DefaultRetryDelay(30*time.Millisecond))
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	start := time.Now()
	r, _ := app.SendTask(ctx, "api.delay", nil, nil)
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the task's default retry delay was not used (the app default is 180s)")
	}
}
