package engine_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// preforkWorker runs a prefork worker of app whose children are this test
// binary running only the calling test: the child rebuilds the same app and
// tasks and becomes a child in Worker.Run. Call it before anything else the
// test does with side effects.
func preforkWorker(t *testing.T, app *engine.App, cfg engine.WorkerConfig) *engine.Worker {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := t.Name()
	cfg.Pool = "prefork"
	cfg.PreforkCommand = func() *exec.Cmd { return exec.Command(self, "-test.run=^"+name+"$") }
	w, err := app.Worker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // in a child, Run serves and exits
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("prefork worker did not stop")
		}
	})
	return w
}

func TestPreforkRunsTasksInChildProcesses(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	pid := engine.Register0(app, "p.pid", func(context.Context) (int, error) { return os.Getpid(), nil })
	add := engine.Register2(app, "p.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	fail := engine.Register0(app, "p.fail", func(context.Context) (int, error) {
		return 0, &engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{"from the child"}}
	})
	boom := engine.Register0(app, "p.panic", func(context.Context) (int, error) { panic("child panic") })
	w := preforkWorker(t, app, engine.WorkerConfig{Concurrency: 2})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, _ := pid.Delay(ctx)
	child, err := r.Get(ctx)
	if err != nil || child == os.Getpid() || child == 0 {
		t.Fatalf("task ran in pid %d (parent %d), err %v", child, os.Getpid(), err)
	}
	s, _ := add.Delay(ctx, 2, 3)
	if v, err := s.Get(ctx); v != 5 || err != nil {
		t.Fatalf("add = %v, %v", v, err)
	}
	f, _ := fail.Delay(ctx)
	if _, err := f.Get(ctx); !engine.IsTaskError(err, "ValueError") {
		t.Fatalf("failure from a child: %v", err)
	}
	p, _ := boom.Delay(ctx)
	if _, err := p.Get(ctx); err == nil {
		t.Fatal("a panicking task succeeded")
	}
	s2, _ := add.Delay(ctx, 1, 1) // the pool goes on
	if v, err := s2.Get(ctx); v != 2 || err != nil {
		t.Fatalf("after a panic: %v, %v", v, err)
	}
	for deadline := time.Now().Add(10 * time.Second); w.Stats().Succeeded.Load() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats().Succeeded = %d, want the 3 successes", w.Stats().Succeeded.Load())
		}
	}
}

func TestPreforkHardTimeLimitKillsTheChild(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	spin := engine.Register0(app, "p.spin", func(context.Context) (int, error) {
		for { // ignores its context: only a process kill stops it
		}
	}, engine.TaskTimeLimits(300*time.Millisecond, 0))
	pid := engine.Register0(app, "p.pid", func(context.Context) (int, error) { return os.Getpid(), nil })
	preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, _ := pid.Delay(ctx)
	p1, err := before.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := spin.Delay(ctx)
	if _, err := r.Get(ctx); !engine.IsTaskError(err, "TimeLimitExceeded") {
		t.Fatalf("spinning task: %v, want TimeLimitExceeded", err)
	}
	after, _ := pid.Delay(ctx)
	p2, err := after.Get(ctx)
	if err != nil || p2 == p1 {
		t.Fatalf("after the kill: pid %d (was %d), %v; want a new child", p2, p1, err)
	}
}

func TestPreforkMaxTasksPerChildRecycles(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	pid := engine.Register0(app, "p.pid", func(context.Context) (int, error) { return os.Getpid(), nil })
	preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1, MaxTasksPerChild: 2})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var pids []int
	for range 6 { // one at a time: each result before the next send
		r, _ := pid.Delay(ctx)
		p, err := r.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	for i := 0; i < 6; i += 2 {
		if pids[i] != pids[i+1] || (i > 0 && pids[i] == pids[i-1]) {
			t.Fatalf("pids %v: want a new child after exactly 2 tasks", pids)
		}
	}
}

func TestPreforkMaxMemoryPerChildRecycles(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	var leaked [][]byte
	leak := engine.Register1(app, "p.leak", func(_ context.Context, mib int) (int, error) {
		b := make([]byte, mib<<20)
		for i := range b {
			b[i] = 1 // touch it: resident, not just reserved
		}
		leaked = append(leaked, b)
		return os.Getpid(), nil
	})
	preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1, MaxMemoryPerChild: 64 << 10}) // 64 MiB

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r1, _ := leak.Delay(ctx, 1)
	p1, err := r1.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := leak.Delay(ctx, 1) // small: same child
	if p2, _ := r2.Get(ctx); p2 != p1 {
		t.Fatalf("recycled after a 1 MiB leak (pid %d -> %d)", p1, p2)
	}
	r3, _ := leak.Delay(ctx, 96) // crosses 64 MiB: recycled after this task
	if p3, err := r3.Get(ctx); p3 != p1 || err != nil {
		t.Fatalf("the leaking task itself: pid %d, %v", p3, err)
	}
	r4, _ := leak.Delay(ctx, 1)
	if p4, _ := r4.Get(ctx); p4 == p1 {
		t.Fatal("child not recycled after it crossed max memory per child")
	}
}

func TestPreforkRetry(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	engine.RegisterRaw(app, "p.flaky", func(_ context.Context, task *engine.Task) error {
		if task.Retries < 2 {
			return engine.Retry(errors.New("again"), 10*time.Millisecond)
		}
		task.Return([]byte(`"done"`))
		return nil
	})
	preforkWorker(t, app, engine.WorkerConfig{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, _ := app.SendTask(ctx, "p.flaky", nil, nil)
	if v, err := r.Get(ctx); v != "done" || err != nil {
		t.Fatalf("retried task = %v, %v", v, err)
	}
}

// A task sent from inside a handler running in a prefork child is that
// task's child, as in the goroutine pool, and is listed in its result's
// children. The child process has its own (memory) broker, so the handler
// reports what it sent from a publish hook.
func TestPreforkTaskSentFromHandlerIsItsChild(t *testing.T) {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	var sent []string // in the child: parent and root of what the handler sent
	app.SetHooks(engine.Hooks{BeforePublish: func(m *codec.Message) {
		if string(m.Task) == "p.leaf" {
			sent = []string{string(m.ParentID), string(m.RootID)}
		}
	}})
	engine.Register0(app, "p.leaf", func(context.Context) (int, error) { return 0, nil })
	spawn := engine.Register0(app, "p.spawn", func(ctx context.Context) ([]string, error) {
		sent = nil
		if err := app.SendRaw(ctx, "p.leaf", nil, nil, engine.TaskID("leaf-of-spawner")); err != nil {
			return nil, err
		}
		return sent, nil
	})
	preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := spawn.ApplyAsync(ctx, engine.TaskID("spawner"), engine.RootID("the-root"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"spawner", "the-root"}; !slices.Equal(got, want) {
		t.Fatalf("sent from the child with parent, root %q; want %q", got, want)
	}
	// The child reports what it sent; the parent lists it in the result.
	meta, err := r.Meta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[[["leaf-of-spawner", null], null]]`; string(meta.Children) != want {
		t.Fatalf("result children %s, want %s", meta.Children, want)
	}
}

// settleCount is a memory broker whose consumers count the messages they
// acknowledge or reject.
type settleCount struct {
	*memory.Broker
	settled atomic.Int64
}

func (b *settleCount) Consume(ctx context.Context, queues []string, prefetch int) (transport.Consumer, error) {
	c, err := b.Broker.Consume(ctx, queues, prefetch)
	if err != nil {
		return nil, err
	}
	return &settleCountConsumer{Consumer: c.(*memory.Consumer), b: b}, nil
}

type settleCountConsumer struct {
	*memory.Consumer
	b *settleCount
}

func (c *settleCountConsumer) Ack(msgs ...*codec.Message) error {
	c.b.settled.Add(int64(len(msgs)))
	return c.Consumer.Ack(msgs...)
}

func (c *settleCountConsumer) Reject(requeue bool, msgs ...*codec.Message) error {
	c.b.settled.Add(int64(len(msgs)))
	return c.Consumer.Reject(requeue, msgs...)
}

// A prefork task's message is settled once its child answers, also when
// the task rejects it or its arguments cannot be decoded: neither is left
// unacknowledged (and released) for the consumer to give back to the
// broker when the worker stops.
func TestPreforkRejectedAndUndecodableTasksSettleTheirMessages(t *testing.T) {
	broker := &settleCount{Broker: memory.NewBroker()}
	app := engine.MustNew(engine.Config{Broker: broker, Backend: memory.NewBackend()})
	defer app.Close()
	engine.RegisterRaw(app, "p.reject", func(context.Context, *engine.Task) error {
		return engine.Reject("not for us", false)
	})
	engine.Register1(app, "p.int", func(_ context.Context, i int) (int, error) { return i, nil })
	w := preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := app.SendRaw(ctx, "p.reject", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := app.SendRaw(ctx, "p.int", []byte(`["not an int"]`), nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); w.Stats().Rejected.Load() != 1 || w.Stats().Failed.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rejected %d, failed %d; want 1 and 1", w.Stats().Rejected.Load(), w.Stats().Failed.Load())
		}
	}
	// The stats count a task just before its message is settled: wait for
	// the settling, then check that it is both messages, once each.
	for deadline := time.Now().Add(20 * time.Second); broker.settled.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := broker.settled.Load(); n != 2 {
		t.Fatalf("%d messages acknowledged or rejected, want both", n)
	}
}

// A prefork task acknowledged early is acknowledged while it runs, once,
// as Celery's prefork pool acknowledges when a child accepts the task: not
// only after the run, which for an hour-long task is long enough for
// Redis or RabbitMQ to deliver it again. One acknowledged late is not.
func TestPreforkAcksEarlyWhileTheTaskRuns(t *testing.T) {
	broker := &settleCount{Broker: memory.NewBroker()}
	app := engine.MustNew(engine.Config{Broker: broker, Backend: memory.NewBackend()})
	defer app.Close()
	nap := func(context.Context) (int, error) { time.Sleep(2 * time.Second); return 1, nil }
	early := engine.Register0(app, "p.nap", nap)
	late := engine.Register0(app, "p.naplate", nap, engine.AcksLate(true))
	w := preforkWorker(t, app, engine.WorkerConfig{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sent := time.Now()
	r, _ := early.Delay(ctx)
	for broker.settled.Load() == 0 && w.Stats().Succeeded.Load() == 0 {
		time.Sleep(time.Millisecond) // ends by the task's end, 2 s on
	}
	// Within a second of sending a task that runs for two: while it ran.
	if broker.settled.Load() == 0 || time.Since(sent) > time.Second {
		t.Fatalf("no acknowledgement while the early-acked task ran (%v after sending it)", time.Since(sent))
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * 100 * time.Millisecond) // a few looks of the ack watcher
	if n := broker.settled.Load(); n != 1 {
		t.Fatalf("%d acknowledgements for one task", n)
	}

	r, _ = late.Delay(ctx)
	time.Sleep(time.Second) // the task runs for 2 s
	if n := broker.settled.Load(); n != 1 {
		t.Fatalf("%d acknowledgements while an acks_late task ran, want only the earlier task's", n-1)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); broker.settled.Load() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("acks_late task: %d acknowledgements in all, want 2", broker.settled.Load())
		}
	}
}

// A task revoked while it waits in the prefork pool for a busy child is
// not sent to a child: it is recorded REVOKED and its message is
// acknowledged, as Celery's prefork pool skips a revoked job it has not
// yet written to a child.
func TestPreforkRevokedWhileQueuedDoesNotRun(t *testing.T) {
	broker := &settleCount{Broker: memory.NewBroker()}
	app := engine.MustNew(engine.Config{Broker: broker, Backend: memory.NewBackend()})
	defer app.Close()
	nap := engine.Register0(app, "p.nap2", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil })
	one := engine.Register0(app, "p.one", func(context.Context) (int, error) { return 1, nil })
	w := preforkWorker(t, app, engine.WorkerConfig{Concurrency: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, _ := nap.Delay(ctx)
	queued, _ := one.Delay(ctx)
	// Both received (and so the worker running), then the second waits
	// in the prefork pool's queue while the first runs.
	for deadline := time.Now().Add(20 * time.Second); w.Stats().Received.Load() < 2 ||
		!slices.ContainsFunc(w.Reserved(), func(ti engine.TaskInfo) bool { return ti.ID == queued.ID }); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second task never waited for the child")
		}
	}
	queued.Revoke(false)
	if _, err := first.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Get(ctx); !errors.Is(err, engine.ErrRevoked) {
		t.Fatalf("task revoked while queued: %v, want ErrRevoked", err)
	}
	for deadline := time.Now().Add(5 * time.Second); broker.settled.Load() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages acknowledged, want 2", broker.settled.Load())
		}
	}
	// A success is counted just after its result is stored (see
	// WorkerStats), so Get can return first: wait for the count, then
	// check that it is the first task's alone.
	for deadline := time.Now().Add(5 * time.Second); w.Stats().Succeeded.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first task's success was never counted")
		}
	}
	if n := w.Stats().Succeeded.Load(); n != 1 {
		t.Fatalf("%d tasks succeeded, want only the first", n)
	}
}
