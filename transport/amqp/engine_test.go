package amqp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport"
)

// quiet is a logger for apps in tests that expect warnings.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newApp returns an engine app on a new broker (at rawURL, or the tests'
// vhost when empty) with the rpc:// backend, unless cfg.Backend is set.
func newApp(t testing.TB, rawURL string, cfg engine.Config, opts ...Option) (*engine.App, *Broker) {
	t.Helper()
	if rawURL == "" {
		rawURL = testURL(t)
	}
	b := newTestBrokerURL(t, rawURL, opts...)
	if cfg.Backend == nil {
		be, err := NewRPCBackend(ctxT(t, 10*time.Second), b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		cfg.Backend = be
	}
	cfg.Broker = b
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	app, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app, b
}

// runWorker runs a worker until the test ends; stop ends it earlier.
func runWorker(t testing.TB, app *engine.App, cfg engine.WorkerConfig) (stop func()) {
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
	return stop
}

// checkRoundTrip sends add, fail, a countdown add and a retrying task
// through client and checks their results.
func checkRoundTrip(t *testing.T, client *engine.App, queue string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	res, err := client.SendTask(ctx, "interop.add", []any{2, 3}, nil, engine.Queue(queue))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "5" {
		t.Fatalf("add = %v, %v", v, err)
	}
	res, _ = client.SendTask(ctx, "interop.fail", []any{"nope"}, nil, engine.Queue(queue))
	if _, err := res.Get(ctx); !engine.IsTaskError(err, "ValueError") {
		t.Fatalf("fail: %v", err)
	}
	start := time.Now()
	res, _ = client.SendTask(ctx, "interop.add", []any{1, 1}, nil, engine.Countdown(300*time.Millisecond), engine.Queue(queue))
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "2" {
		t.Fatalf("countdown add = %v, %v", v, err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("countdown task ran after %v", el)
	}
	res, _ = client.SendTask(ctx, "interop.retry", []any{2}, nil, engine.Queue(queue))
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "2" {
		t.Fatalf("retry = %v, %v", v, err)
	}
}

// TestEngineRoundTrip runs tasks through a celerity worker on RabbitMQ
// with the rpc:// backend in the same app: the results stay in process.
func TestEngineRoundTrip(t *testing.T) {
	t.Parallel()
	queue := testQueue(t, "engine")
	app, _ := newApp(t, "", engine.Config{TaskAcksLate: true, TaskDefaultQueue: queue})
	interoptest.RegisterTasks(app, nil)
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 4})
	checkRoundTrip(t, app, queue)
}

// TestEngineRPCAcrossClients: the client and the worker are different apps
// on different connections, so every state travels through RabbitMQ to the
// client's reply queue (reply_to = its oid, correlation_id = task id).
func TestEngineRPCAcrossClients(t *testing.T) {
	t.Parallel()
	queue := testQueue(t, "rpc")
	client, cb := newApp(t, "", engine.Config{TaskDefaultQueue: queue})
	worker, _ := newApp(t, "", engine.Config{TaskDefaultQueue: queue, TaskTrackStarted: true})
	interoptest.RegisterTasks(worker, nil)
	runWorker(t, worker, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 4})
	checkRoundTrip(t, client, queue)

	// The STARTED state went through the reply queue too.
	ctx := ctxT(t, 10*time.Second)
	id := codec.NewUUID()
	sub, err := client.Backend().Subscribe(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := client.SendTask(ctx, "interop.sleep", []any{0.3}, nil, engine.TaskID(id)); err != nil {
		t.Fatal(err)
	}
	var states []string
	for {
		rec, err := sub.Next(ctx, nil)
		if err != nil {
			t.Fatalf("states so far %v: %v", states, err)
		}
		var r struct{ Status string }
		json.Unmarshal(rec, &r)
		states = append(states, r.Status)
		if r.Status == "SUCCESS" {
			break
		}
	}
	if fmt.Sprint(states) != "[STARTED SUCCESS]" {
		t.Fatalf("states %v, want [STARTED SUCCESS]", states)
	}
	if cb.OID() == "" {
		t.Fatal("no oid")
	}
}

// TestEngineRPCChainAcrossClients: a chain's later steps are sent by the
// worker, not the client; as Celery's freeze does, the client names its
// reply queue in each step's options (reply_to), and the worker sends the
// step with it, so the chain's result reaches the client over rpc://.
// Without it the last step's result went to the worker's own queue and
// the client waited forever (a Python worker behaves the same). When a
// step fails, the worker stores FAILURE for the steps after it, tasks it
// never received: those records go to the reply_to in the steps' options
// too (Celery's mark_as_failure), where they were kept in the worker.
func TestEngineRPCChainAcrossClients(t *testing.T) {
	t.Parallel()
	queue := testQueue(t, "rpcchain")
	client, _ := newApp(t, "", engine.Config{TaskDefaultQueue: queue})
	worker, _ := newApp(t, "", engine.Config{TaskDefaultQueue: queue})
	interoptest.RegisterTasks(worker, nil)
	runWorker(t, worker, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 4})
	ctx := ctxT(t, 20*time.Second)
	res, err := client.ApplyChain(ctx, engine.Sig("interop.add", 1, 2), engine.Sig("interop.mul", 3), engine.Sig("interop.add", 4))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "13" {
		t.Fatalf("chain = %v, %v", v, err)
	}
	failed, err := client.ApplyChain(ctx, engine.Sig("interop.fail", "first"), engine.Sig("interop.add", 1), engine.Sig("interop.add", 2))
	if err != nil {
		t.Fatal(err)
	}
	var te *engine.TaskError
	if _, err := failed.Get(ctx); !errors.As(err, &te) || te.Type != "ValueError" || fmt.Sprint(te.Args) != "[first]" {
		t.Fatalf("failed chain = %v, want the first step's ValueError", err)
	}
}

// TestRPCRefusesChords: like Celery's, the rpc backend cannot run chords
// or save groups.
func TestRPCRefusesChords(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	be, err := NewRPCBackend(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.EnsureChordsAllowed(); !errors.Is(err, ErrChordsUnsupported) {
		t.Fatalf("EnsureChordsAllowed = %v", err)
	}
	if err := be.SaveGroup(t.Context(), "g", []byte("{}")); !errors.Is(err, ErrGroupsUnsupported) {
		t.Fatalf("SaveGroup = %v", err)
	}
	if _, err := NewRPCBackend(t.Context(), b); err == nil {
		t.Fatal("a second rpc backend on the same broker was accepted")
	}
	var _ transport.Backend = be
}
