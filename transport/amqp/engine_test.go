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

	"github.com/celerity-go/celerity/engine"
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

// interopTasks registers in Go the tasks of the shared Python interop app
// (py_app.py) plus interop.retry; seen (if not nil) is called with each
// task run.
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
			v, err := arith2(args[0], args[1], mul)
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
			if sum, err = arith2(sum, x, false); err != nil {
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

func arith2(x, y json.Number, mul bool) (json.Number, error) {
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
	interopTasks(app, nil)
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
	interopTasks(worker, nil)
	runWorker(t, worker, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 4})
	checkRoundTrip(t, client, queue)

	// The STARTED state went through the reply queue too.
	ctx := ctxT(t, 10*time.Second)
	id := newUUID()
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
