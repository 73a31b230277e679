package events_test

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/engine/events"
)

// recorder collects the events a bus carries.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
	msgs   []string // routing keys, per message
	state  events.State
}

func (r *recorder) listen(t *testing.T, bus control.Bus) {
	t.Helper()
	l, err := bus.ListenEvents(context.Background(), "#", func(m *control.Message) {
		evs, err := events.Decode(m.Body)
		if err != nil {
			t.Errorf("undecodable event message: %v: %s", err, m.Body)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m.RoutingKey)
		r.events = append(r.events, evs...)
		r.mu.Unlock()
		for _, e := range evs {
			r.state.Apply(e)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

func (r *recorder) of(uuid string) []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event
	for _, e := range r.events {
		if e.UUID() == uuid {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) types(uuid string) []string {
	var out []string
	for _, e := range r.of(uuid) {
		out = append(out, e.Type())
	}
	return out
}

func (r *recorder) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type() == typ {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runWorker runs app's worker until the test ends, returning it once ready.
func runWorker(t *testing.T, app *engine.App, cfg engine.WorkerConfig, after func()) *engine.Worker {
	t.Helper()
	w, err := app.Worker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	app.AddHooks(engine.Hooks{WorkerReady: func(*engine.Worker) { close(ready) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	<-ready
	t.Cleanup(func() {
		cancel()
		<-done
		if after != nil {
			after()
		}
	})
	return w
}

func TestTaskAndWorkerEvents(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var rec recorder
	rec.listen(t, bus)
	app := engine.MustNew(engine.Config{Hostname: "ev@host"})
	engine.Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	engine.Register1(app, "t.fail", func(_ context.Context, msg string) (int, error) {
		return 0, &engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{msg}}
	})
	var tries atomic.Int64
	engine.Register0(app, "t.retry", func(context.Context) (int, error) {
		if tries.Add(1) == 1 {
			return 0, engine.Retry(errors.New("again"), time.Millisecond)
		}
		return 7, nil
	})
	d := events.New(bus, events.Options{TaskEvents: true, FlushInterval: 10 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond})
	d.Attach(app)
	d.Start()
	runWorker(t, app, engine.WorkerConfig{Concurrency: 2}, func() { d.Close() })
	ctx := context.Background()

	add, _ := app.SendTask(ctx, "t.add", []any{2, 3}, nil)
	fail, _ := app.SendTask(ctx, "t.fail", []any{"it's \"bad\""}, nil)
	retry, _ := app.SendTask(ctx, "t.retry", nil, nil)
	held, _ := app.SendTask(ctx, "t.add", []any{1, 1}, nil, engine.Countdown(time.Hour))
	expired, _ := app.SendTask(ctx, "t.add", []any{1, 1}, nil, engine.ExpiresIn(-time.Second))
	unknown, _ := app.SendTask(ctx, "t.nope", nil, nil)
	for _, r := range []*engine.AsyncResult[any]{add, fail, retry, expired} {
		r.Wait(ctx)
	}
	app.Revoke(false, held.ID)

	eventually(t, "the task events", func() bool {
		return slices.Contains(rec.types(add.ID), "task-succeeded") && slices.Contains(rec.types(fail.ID), "task-failed") &&
			slices.Contains(rec.types(expired.ID), "task-revoked") && len(rec.of(unknown.ID)) > 0 &&
			strings.Count(strings.Join(rec.types(retry.ID), ","), "task-succeeded") == 1
	})
	if got := strings.Join(rec.types(add.ID), ","); got != "task-received,task-started,task-succeeded" {
		t.Errorf("add events: %s", got)
	}
	evs := rec.of(add.ID)
	if evs[0]["name"] != "t.add" || evs[0]["args"] != "(2, 3)" || evs[0]["kwargs"] != "{}" || evs[0]["root_id"] != add.ID ||
		evs[0]["parent_id"] != nil || evs[0]["eta"] != nil || evs[0]["retries"] != 0.0 {
		t.Errorf("task-received: %v", evs[0])
	}
	if evs[2]["result"] != "5" || evs[2]["runtime"].(float64) < 0 {
		t.Errorf("task-succeeded: %v", evs[2])
	}
	for _, e := range evs {
		if e.Hostname() != "ev@host" || e.Clock() <= 0 || e["pid"] == nil || e["utcoffset"] == nil || e.Timestamp().IsZero() {
			t.Errorf("common fields: %v", e)
		}
	}
	if evs[0].Clock() >= evs[1].Clock() || evs[1].Clock() >= evs[2].Clock() {
		t.Errorf("clocks do not increase: %d %d %d", evs[0].Clock(), evs[1].Clock(), evs[2].Clock())
	}
	f := rec.of(fail.ID)
	if last := f[len(f)-1]; last["exception"] != `ValueError('it\'s "bad"')` || !strings.Contains(last["traceback"].(string), "ValueError") {
		t.Errorf("task-failed: %v", last)
	}
	// The retry message is published before task-retried is emitted, so
	// the second run's events may come first (as with Celery).
	rt := rec.types(retry.ID)
	if got := strings.Join(rt, ","); len(rt) != 6 || rt[0] != "task-received" || rt[1] != "task-started" ||
		strings.Count(got, "task-retried") != 1 || strings.Count(got, "task-received") != 2 ||
		strings.Count(got, "task-started") != 2 || strings.Count(got, "task-succeeded") != 1 {
		t.Errorf("retry events: %s", got)
	}
	if r := rec.of(expired.ID); r[len(r)-1]["expired"] != true || r[len(r)-1]["terminated"] != false {
		t.Errorf("task-revoked: %v", r[len(r)-1])
	}
	if u := rec.of(unknown.ID); u[0].Type() != "task-failed" || u[0]["exception"] != "NotRegistered('t.nope')" {
		t.Errorf("unknown task: %v", u)
	}
	if rec.count("worker-online") != 1 {
		t.Errorf("worker-online sent %d times", rec.count("worker-online"))
	}
	eventually(t, "a heartbeat", func() bool { return rec.count("worker-heartbeat") > 0 })
	var hb events.Event
	rec.mu.Lock()
	for _, e := range rec.events {
		if e.Type() == "worker-heartbeat" {
			hb = e
		}
	}
	for _, rk := range rec.msgs {
		if rk != "task.multi" && !strings.HasPrefix(rk, "worker.") {
			t.Errorf("routing key %q", rk)
		}
	}
	rec.mu.Unlock()
	if hb["sw_ident"] != "celerity" || hb["freq"] != 0.2 || hb["sw_sys"] == "" || len(hb["loadavg"].([]any)) != 3 {
		t.Errorf("heartbeat: %v", hb)
	}
	snap := rec.state.Snapshot()
	if len(snap.Workers) != 1 || !snap.Workers[0].Alive(time.Now()) || snap.ByName["t.add"].Succeeded < 1 ||
		snap.ByName["t.fail"].Failed != 1 || len(snap.Failures) < 1 {
		t.Errorf("state: %+v", snap)
	}
}

func TestWorkerOfflineAndCloseFlush(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var rec recorder
	rec.listen(t, bus)
	app := engine.MustNew(engine.Config{Hostname: "off@host"})
	engine.Register0(app, "t.one", func(context.Context) (int, error) { return 1, nil })
	// A flush interval far beyond the test: only Close sends the partial batch.
	d := events.New(bus, events.Options{TaskEvents: true, FlushInterval: time.Hour})
	d.Attach(app)
	d.Start()
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	r, _ := app.SendTask(context.Background(), "t.one", nil, nil)
	r.Wait(context.Background())
	cancel()
	<-done
	d.Close()
	if got := strings.Join(rec.types(r.ID), ","); got != "task-received,task-started,task-succeeded" {
		t.Errorf("task events after Close: %s", got)
	}
	if rec.count("worker-offline") != 1 {
		t.Error("no worker-offline")
	}
	snap := rec.state.Snapshot()
	if len(snap.Workers) != 1 || snap.Workers[0].Alive(time.Now()) {
		t.Errorf("worker after offline: %+v", snap.Workers)
	}
	st := d.Stats()
	if st.Emitted != st.Sent || st.Dropped != 0 {
		t.Errorf("stats: %+v", st)
	}
}

func TestBatchesOfBufferLimit(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var mu sync.Mutex
	var sizes []int
	l, _ := bus.ListenEvents(context.Background(), "task.multi", func(m *control.Message) {
		evs, err := events.Decode(m.Body)
		if err != nil || m.Headers.Hostname != "b@host" || !m.Transient {
			t.Errorf("batch: %v, %+v", err, m.Headers)
		}
		mu.Lock()
		sizes = append(sizes, len(evs))
		mu.Unlock()
	})
	defer l.Close()
	app := engine.MustNew(engine.Config{Hostname: "b@host"})
	engine.Register0(app, "t.one", func(context.Context) (int, error) { return 1, nil })
	// MaxPending 4: the publisher is woken at 2 full batches, and the
	// batches in its hands count against the 4, so none is dropped.
	d := events.New(bus, events.Options{TaskEvents: true, BufferLimit: 5, MaxPending: 4, FlushInterval: time.Hour})
	d.Attach(app)
	d.Start()
	w := runWorker(t, app, engine.WorkerConfig{Concurrency: 1}, nil)
	for range 4 { // 12 events: two full batches now, 2 events at Close
		r, _ := app.SendTask(context.Background(), "t.one", nil, nil)
		r.Wait(context.Background())
	}
	eventually(t, "two batches", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 2 })
	_ = w
	d.Close()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != "[5 5 2]" {
		t.Errorf("batch sizes %v, want [5 5 2]", sizes)
	}
}

func TestEnableDisableTaskEvents(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var rec recorder
	rec.listen(t, bus)
	app := engine.MustNew(engine.Config{Hostname: "sw@host"})
	engine.Register0(app, "t.one", func(context.Context) (int, error) { return 1, nil })
	d := events.New(bus, events.Options{FlushInterval: 5 * time.Millisecond})
	d.Attach(app)
	d.Start()
	runWorker(t, app, engine.WorkerConfig{Concurrency: 1}, func() { d.Close() })
	ctx := context.Background()
	off, _ := app.SendTask(ctx, "t.one", nil, nil)
	off.Wait(ctx)
	if !d.EnableTaskEvents() || d.EnableTaskEvents() || !d.TaskEvents() {
		t.Fatal("enable")
	}
	on, _ := app.SendTask(ctx, "t.one", nil, nil)
	on.Wait(ctx)
	eventually(t, "events of the second task", func() bool { return len(rec.types(on.ID)) == 3 })
	if len(rec.of(off.ID)) != 0 {
		t.Error("task events sent while off")
	}
	if !d.DisableTaskEvents() || d.DisableTaskEvents() {
		t.Fatal("disable")
	}
	d.SendHeartbeat()
	eventually(t, "the requested heartbeat", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, e := range rec.events {
			if e.Type() == "worker-heartbeat" && e["freq"] == 5.0 {
				return true
			}
		}
		return false
	})
	if err := d.Send("custom-thing", map[string]any{"answer": 42, "type": "ignored"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the custom event", func() bool { return rec.count("custom-thing") == 1 })
}

// slowBus is a broker that takes the publisher hostage: PublishEvent
// blocks until released (or fails at once when broken).
type slowBus struct {
	*control.MemoryBus
	release chan struct{}
	broken  bool
	calls   atomic.Int64
}

func (b *slowBus) PublishEvent(ctx context.Context, rk string, m *control.Message) error {
	b.calls.Add(1)
	if b.broken {
		return errors.New("connection refused")
	}
	select {
	case <-b.release:
		return b.MemoryBus.PublishEvent(ctx, rk, m)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestEmissionNeverBlocksTasks: with a broker that does not take events
// (stuck, or refusing), tasks keep completing at full speed and the
// events that do not fit the bounded buffer are dropped and counted.
func TestEmissionNeverBlocksTasks(t *testing.T) {
	t.Parallel()
	for _, broken := range []bool{false, true} {
		t.Run(fmt.Sprintf("broken=%v", broken), func(t *testing.T) {
			t.Parallel()
			bus := &slowBus{MemoryBus: control.NewMemoryBus(), release: make(chan struct{}), broken: broken}
			app := engine.MustNew(engine.Config{Hostname: "slow@host"})
			var done atomic.Int64
			engine.RegisterRaw(app, "t.noop", func(context.Context, *engine.Task) error { done.Add(1); return nil },
				engine.TaskIgnoreResult(true))
			d := events.New(bus, events.Options{TaskEvents: true, MaxPending: 4, PublishTimeout: time.Hour,
				Logger: quiet()})
			d.Attach(app)
			d.Start()
			runWorker(t, app, engine.WorkerConfig{Concurrency: 4}, nil)
			const n = 20000
			for range n {
				if err := app.SendRaw(context.Background(), "t.noop", nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			// 3 events per task, plus worker-online.
			eventually(t, "every task to run", func() bool { return done.Load() == n && d.Stats().Emitted == 3*n+1 })
			st := d.Stats()
			if st.Dropped == 0 {
				t.Errorf("stats while stuck: %+v", st)
			}
			if !broken && st.Emitted-st.Dropped > int64((4+1)*24+1) {
				t.Errorf("more events held than the bound: %+v", st)
			}
			t.Logf("%d tasks done with the broker stuck: %+v", n, st)
			close(bus.release)
			d.Close()
			st = d.Stats()
			if st.Sent+st.Dropped != st.Emitted {
				t.Errorf("events unaccounted for: %+v", st)
			}
			if broken && (st.Sent != 0 || st.PublishErrors == 0) {
				t.Errorf("broken broker: %+v", st)
			}
		})
	}
}

func TestDecodePythonEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file  string
		types []string
	}{
		{"py_event_task.multi.json", []string{"task-received", "task-started", "task-succeeded"}},
		{"py_event_worker.heartbeat.json", []string{"worker-heartbeat"}},
		{"py_event_worker.online.json", []string{"worker-online"}},
		{"py_event_worker.offline.json", []string{"worker-offline"}},
	} {
		evs := pythonEvents(t, tc.file)
		var got []string
		for _, e := range evs {
			got = append(got, e.Type())
			if e.Hostname() != "pyw1@cap" || e.Clock() <= 0 || e.Timestamp().Year() < 2020 {
				t.Errorf("%s: %v", tc.file, e)
			}
		}
		if !slices.Equal(got, tc.types) {
			t.Errorf("%s: %v", tc.file, got)
		}
	}
	for _, bad := range []string{`[1]`, `[null]`, `null`, `"x"`, `{`, `[{"type": "a"}, 2]`} {
		if _, err := events.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s): no error", bad)
		}
	}
}

// TestFieldOrderMatchesPython compares the key order of our events with
// the events a Python worker sent (celery-wire.md §7.2).
func TestFieldOrderMatchesPython(t *testing.T) {
	t.Parallel()
	want := map[string]string{}
	for _, f := range []string{"py_event_task.multi.json", "py_event_worker.heartbeat.json"} {
		for _, raw := range pythonRaw(t, f) {
			keys := orderedKeys(t, raw)
			want[typeOf(t, raw)] = strings.Join(keys, ",")
		}
	}
	bus := control.NewMemoryBus()
	var mu sync.Mutex
	got := map[string]string{}
	l, _ := bus.ListenEvents(context.Background(), "#", func(m *control.Message) {
		var list []stdjson.RawMessage
		if m.Body[0] != '[' {
			list = []stdjson.RawMessage{append([]byte(nil), m.Body...)}
		} else if err := stdjson.Unmarshal(m.Body, &list); err != nil {
			t.Error(err)
		}
		mu.Lock()
		for _, raw := range list {
			got[typeOf(t, raw)] = strings.Join(orderedKeys(t, raw), ",")
		}
		mu.Unlock()
	})
	defer l.Close()
	app := engine.MustNew(engine.Config{Hostname: "order@host"})
	engine.Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	d := events.New(bus, events.Options{TaskEvents: true, FlushInterval: 5 * time.Millisecond})
	d.Attach(app)
	d.Start()
	runWorker(t, app, engine.WorkerConfig{Concurrency: 1}, func() { d.Close() })
	r, _ := app.SendTask(context.Background(), "t.add", []any{1, 1}, nil)
	r.Wait(context.Background())
	d.SendHeartbeat()
	eventually(t, "the events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["task-succeeded"] != "" && got["worker-heartbeat"] != ""
	})
	mu.Lock()
	defer mu.Unlock()
	for typ, keys := range want {
		if got[typ] != keys {
			t.Errorf("%s keys:\n got %s\nwant %s", typ, got[typ], keys)
		}
	}
}

func pythonRaw(t *testing.T, file string) []stdjson.RawMessage {
	t.Helper()
	body := pythonBody(t, file)
	if body[0] != '[' {
		return []stdjson.RawMessage{body}
	}
	var list []stdjson.RawMessage
	if err := stdjson.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	return list
}

func pythonEvents(t *testing.T, file string) []events.Event {
	t.Helper()
	evs, err := events.Decode(pythonBody(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func typeOf(t *testing.T, raw []byte) string {
	var e struct{ Type string }
	if err := stdjson.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e.Type
}

// orderedKeys lists the keys of a JSON object in document order.
func orderedKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := stdjson.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip stdjson.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestTerminatedTaskIsRevokedEvent(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var rec recorder
	rec.listen(t, bus)
	app := engine.MustNew(engine.Config{Hostname: "term@host"})
	started := make(chan struct{})
	engine.Register0(app, "t.wait", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, context.Cause(ctx)
	})
	d := events.New(bus, events.Options{TaskEvents: true, FlushInterval: 5 * time.Millisecond})
	d.Attach(app)
	d.Start()
	runWorker(t, app, engine.WorkerConfig{Concurrency: 1}, func() { d.Close() })
	r, _ := app.SendTask(context.Background(), "t.wait", nil, nil)
	<-started
	app.Revoke(true, r.ID)
	eventually(t, "task-revoked", func() bool { return slices.Contains(rec.types(r.ID), "task-revoked") })
	evs := rec.of(r.ID)
	if last := evs[len(evs)-1]; last["terminated"] != true || last["signum"] != 15.0 || last["expired"] != false {
		t.Errorf("task-revoked: %v", last)
	}
}

func TestTaskSentEvent(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	var rec recorder
	rec.listen(t, bus)
	app := engine.MustNew(engine.Config{Hostname: "client@host"})
	d := events.New(bus, events.Options{SendSentEvent: true, FlushInterval: 5 * time.Millisecond})
	d.Attach(app)
	d.Start()
	defer d.Close()
	r, err := app.SendTask(context.Background(), "remote.add", []any{1, 2}, map[string]any{"z": true}, engine.Queue("math"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "task-sent", func() bool { return len(rec.of(r.ID)) == 1 })
	e := rec.of(r.ID)[0]
	if e.Type() != "task-sent" || e["name"] != "remote.add" || e["args"] != "(1, 2)" || e["kwargs"] != "{'z': True}" ||
		e["queue"] != "math" || e["routing_key"] != "math" || e["retries"] != 0.0 || e.Hostname() != "client@host" {
		t.Errorf("task-sent: %v", e)
	}
}
