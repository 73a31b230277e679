package redis_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport/redis"
)

// python is one run of the Python side: the interop directory, the
// database URL and the environment shared by its processes.
type python struct {
	dir, url string
	env      []string
}

// newPython finds Python Celery (skipping or failing like brokertest) and
// prepares an environment on the interop database.
func newPython(t *testing.T, extra ...string) *python {
	t.Helper()
	dir := brokertest.Celery(t)
	url := withDB(t, testURL(t), interopDB)
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"CELERITY_INTEROP_DIR="+dir, "PYTHONPATH="+testdata+string(os.PathListSeparator)+dir,
		"CELERY_BROKER_URL="+url, "CELERY_RESULT_BACKEND="+url, "PYTHONDONTWRITEBYTECODE=1")
	return &python{dir: dir, url: url, env: append(env, extra...)}
}

// run runs a Python script to completion and returns its stdout.
func (p *python) run(t *testing.T, stdin []byte, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	return interoptest.Script(t, "testdata", p.env, stdin, timeout, append([]string{script}, args...)...)
}

// worker starts `celery worker -P solo` for queue; it is stopped (warm,
// then killed) when the test ends or stop is called. kill9 kills it with
// SIGKILL, so that it cannot restore what it holds.
func (p *python) worker(t *testing.T, queue string, extraEnv ...string) (stop, kill9 func()) {
	t.Helper()
	return interoptest.Worker(t, "testdata", append(p.env[:len(p.env):len(p.env)], extraEnv...), "interop_app", queue)
}

// sent is one line of interop_send.py / py_send.py.
type sent struct {
	Kind   string          `json:"kind"`
	ID     string          `json:"id"`
	Expect json.RawMessage `json:"expect"`
}

func parseLines[T any](t *testing.T, out []byte) []T {
	t.Helper()
	var list []T
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		list = append(list, v)
	}
	return list
}

// collected is one line of py_collect.py.
type collected struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Kind   string          `json:"kind"`
	Expect json.RawMessage `json:"expect"`
}

// check compares a result read by Python with what the sender expected:
// the value, the exception type of a FAILURE, or "REVOKED".
func (c collected) check() error {
	var expect any
	json.Unmarshal(c.Expect, &expect)
	switch {
	case expect == "REVOKED":
		if c.Status != "REVOKED" {
			return fmt.Errorf("status %s, want REVOKED", c.Status)
		}
	case c.Status == "FAILURE":
		var exc struct {
			Type string `json:"exc_type"`
		}
		json.Unmarshal(c.Result, &exc)
		if exc.Type != expect {
			return fmt.Errorf("failed with %s, want %v", c.Result, expect)
		}
	default:
		var got any
		json.Unmarshal(c.Result, &got)
		if c.Status != "SUCCESS" || !reflect.DeepEqual(got, expect) {
			return fmt.Errorf("status %s result %s, want %s", c.Status, c.Result, c.Expect)
		}
	}
	return nil
}

// cleanupQueue deletes the lists and binding of queue in the interop
// database.
func cleanupQueue(t *testing.T, b *redis.Broker, queue string) {
	t.Cleanup(func() {
		b.PurgeQueue(context.Background(), queue)
		c := b.Client()
		c.Do(context.Background(), c.B().Del().Key("_kombu.binding."+queue).Build())
	})
}

// forget deletes the result records of items when the test ends.
func forget[T any](t *testing.T, be *redis.Backend, items []T, id func(T) string) {
	t.Cleanup(func() {
		for _, it := range items {
			be.ForgetResult(context.Background(), id(it))
		}
	})
}

func uniqueQueue(t *testing.T) string {
	return strings.TrimSuffix(brokertest.Prefix(t), "-")
}

// TestInteropPythonToGo: the real Python client sends tasks (the shared
// py_send.py and this package's interop_send.py with options, in JSON and
// msgpack), a celerity worker runs them, and the real Python client reads
// the results.
func TestInteropPythonToGo(t *testing.T) {
	t.Parallel()
	testPythonToGo(t, "json")
}

// TestInteropPythonToGoMsgpack is TestInteropPythonToGo with msgpack
// bodies from the Python client.
func TestInteropPythonToGoMsgpack(t *testing.T) {
	t.Parallel()
	testPythonToGo(t, "msgpack")
}

func testPythonToGo(t *testing.T, serializer string) {
	py := newPython(t, "CELERY_TASK_SERIALIZER="+serializer)
	queue := uniqueQueue(t)
	app, b, be := newApp(t, py.url, engine.Config{AcceptContent: []string{"json", "msgpack"}, TaskAcksLate: true})
	cleanupQueue(t, b, queue)
	type run struct {
		ran       time.Time
		eta       time.Time
		redeliver bool
	}
	var mu sync.Mutex
	runs := map[string]run{}
	interoptest.RegisterTasks(app, func(tk *engine.Task) {
		mu.Lock()
		runs[strings.Clone(tk.ID)] = run{ran: time.Now(), eta: tk.ETA} // a view that dies with the task
		mu.Unlock()
	})

	var lines []byte
	lines = append(lines, py.run(t, nil, 60*time.Second, filepath.Join(py.dir, "py_send.py"),
		"add", "mul", "xsum", "fail", "sleep", "echo", "group", "--queue", queue)...)
	lines = append(lines, py.run(t, nil, 60*time.Second, "interop_send.py", queue)...)

	// Python put priority 9 and 4 messages in kombu's priority lists.
	ctx := ctxT(t, 60*time.Second)
	c := b.Client()
	for _, bucket := range []string{"\x06\x163", "\x06\x169"} {
		if n, _ := c.Do(ctx, c.B().Llen().Key(queue+bucket).Build()).AsInt64(); n != 1 {
			t.Errorf("list %q holds %d messages, want 1", queue+bucket, n)
		}
	}

	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
	out := py.run(t, lines, 60*time.Second, filepath.Join(py.dir, "py_collect.py"), "-", "--timeout", "30")
	results := parseLines[collected](t, out)
	forget(t, be, results, func(r collected) string { return r.ID })
	if want := bytes.Count(lines, []byte("\n")) + 2; len(results) != want { // the group line expands to 3
		t.Fatalf("collected %d results, want %d:\n%s", len(results), want, out)
	}
	kinds := map[string]bool{}
	for _, r := range results {
		kinds[r.Kind] = true
		if err := r.check(); err != nil {
			t.Errorf("%s (%s): %v", r.Kind, r.ID, err)
		}
	}
	for _, k := range []string{"add", "mul", "xsum", "fail", "sleep", "echo", "group", "echo-types", "retry",
		"countdown", "eta", "expired", "priority-9", "priority-4", "zlib", "bzip2"} {
		if !kinds[k] {
			t.Errorf("no result for %s", k)
		}
	}
	// ETA tasks ran no earlier than their ETA.
	mu.Lock()
	defer mu.Unlock()
	for _, s := range parseLines[sent](t, lines) {
		if s.Kind != "countdown" && s.Kind != "eta" {
			continue
		}
		r, ok := runs[s.ID]
		if !ok || r.eta.IsZero() || r.ran.Before(r.eta) {
			t.Errorf("%s %s: ran %v, eta %v", s.Kind, s.ID, r.ran, r.eta)
		}
	}
}

// everything is a value of every JSON type.
var everything = []any{nil, true, false, 0, -7, 1 << 53, 1.5, -0.25, "", "é✓ \"q\"\n", []any{}, []any{1, []any{2, nil}}, map[string]any{}, map[string]any{"k": map[string]any{"n": []any{true}}}}

// TestInteropGoToPython: a celerity client sends tasks to the real Python
// worker and reads the results.
func TestInteropGoToPython(t *testing.T) {
	t.Parallel()
	py := newPython(t)
	queue := uniqueQueue(t)
	app, b, be := newApp(t, py.url, engine.Config{TaskDefaultQueue: queue})
	cleanupQueue(t, b, queue)
	ctx := ctxT(t, 90*time.Second)

	type call struct {
		kind   string
		task   string
		args   []any
		kwargs map[string]any
		opts   []engine.Option
		expect any // value, "ValueError", or "REVOKED"
	}
	calls := []call{
		{kind: "add", task: "interop.add", args: []any{2, 3}, expect: 5.0},
		{kind: "echo-types", task: "interop.echo", args: everything, kwargs: map[string]any{"kw": everything, "none": nil},
			expect: map[string]any{"args": everything, "kwargs": map[string]any{"kw": everything, "none": nil}}},
		{kind: "fail", task: "interop.fail", args: []any{"boom from go"}, expect: "ValueError"},
		{kind: "retry", task: "interop.retry", args: []any{2}, expect: 2.0},
		{kind: "countdown", task: "interop.add", args: []any{1, 1}, opts: []engine.Option{engine.Countdown(time.Second)}, expect: 2.0},
		{kind: "eta", task: "interop.add", args: []any{2, 2}, opts: []engine.Option{engine.ETA(time.Now().Add(time.Second))}, expect: 4.0},
		{kind: "expired", task: "interop.add", args: []any{3, 3}, opts: []engine.Option{engine.ExpiresAt(time.Now().Add(-5 * time.Second))}, expect: "REVOKED"},
		{kind: "priority-9", task: "interop.mul", args: []any{3, 3}, opts: []engine.Option{engine.Priority(9)}, expect: 9.0},
		{kind: "priority-4", task: "interop.mul", args: []any{2, 2}, opts: []engine.Option{engine.Priority(4)}, expect: 4.0},
		{kind: "zlib", task: "interop.xsum", args: []any{[]any{1, 2, 3}}, opts: []engine.Option{engine.Compression("zlib")}, expect: 6.0},
		{kind: "bzip2", task: "interop.xsum", args: []any{[]any{4, 5, 6}}, opts: []engine.Option{engine.Compression("bzip2")}, expect: 15.0},
		{kind: "msgpack", task: "interop.echo", args: everything, opts: []engine.Option{engine.Serializer("msgpack")},
			expect: map[string]any{"args": everything, "kwargs": map[string]any{}}},
		{kind: "msgpack-zlib", task: "interop.add", args: []any{20, 22}, opts: []engine.Option{engine.Serializer("msgpack"), engine.Compression("zlib")}, expect: 42.0},
	}
	type pending struct {
		call
		res  *engine.AsyncResult[any]
		sent time.Time
	}
	var ps []pending
	for _, c := range calls {
		res, err := app.SendTask(ctx, c.task, c.args, c.kwargs, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		ps = append(ps, pending{c, res, time.Now()})
	}
	forget(t, be, ps, func(p pending) string { return p.res.ID })
	// Priorities went to kombu's lists.
	cl := b.Client()
	for _, bucket := range []string{"\x06\x163", "\x06\x169"} {
		if n, _ := cl.Do(ctx, cl.B().Llen().Key(queue+bucket).Build()).AsInt64(); n != 1 {
			t.Errorf("list %q holds %d messages, want 1", queue+bucket, n)
		}
	}
	py.worker(t, queue)
	// Normalise the expected values through JSON (ints become float64).
	norm := func(v any) any {
		raw, _ := json.Marshal(v)
		var out any
		json.Unmarshal(raw, &out)
		return out
	}
	for _, p := range ps {
		got, err := p.res.Get(ctx)
		switch p.expect {
		case "ValueError":
			var te *engine.TaskError
			if !errors.As(err, &te) || te.Type != "ValueError" || te.Module != "builtins" || fmt.Sprint(te.Args) != "[boom from go]" {
				t.Errorf("%s: err %v, want ValueError('boom from go')", p.kind, err)
			}
		case "REVOKED":
			if !errors.Is(err, engine.ErrRevoked) {
				t.Errorf("%s: err %v, want revoked", p.kind, err)
			}
		default:
			if err != nil || !reflect.DeepEqual(norm(got), norm(p.expect)) {
				t.Errorf("%s: got %#v, %v; want %#v", p.kind, got, err, p.expect)
			}
		}
		if p.kind == "countdown" || p.kind == "eta" {
			m, _ := p.res.Meta(ctx)
			if m.State.String() != "SUCCESS" {
				t.Errorf("%s: state %v", p.kind, m.State)
			}
		}
	}
}

// TestInteropPythonRestoresGoHeld: a celerity consumer process fetches
// messages and is killed -9 while holding them; a Python worker started
// afterwards (visibility_timeout 1s) restores them from the unacked
// bookkeeping our consumer wrote, runs them, and the results reach Go.
func TestInteropPythonRestoresGoHeld(t *testing.T) {
	t.Parallel()
	py := newPython(t)
	queue := uniqueQueue(t)
	prefix := queue + ":"
	t.Cleanup(func() { deletePrefix(t, py.url, prefix) })
	app, _, be := newApp(t, py.url, engine.Config{TaskDefaultQueue: queue}, redis.WithGlobalKeyPrefix(prefix))
	ctx := ctxT(t, 60*time.Second)
	var results []*engine.AsyncResult[any]
	for i := range 3 {
		res, err := app.SendTask(ctx, "interop.add", []any{i, 100}, nil)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	forget(t, be, results, func(r *engine.AsyncResult[any]) string { return r.ID })
	child := startChild(t, "hold", "CHILD_URL="+py.url, "CHILD_PREFIX="+prefix, "CHILD_QUEUE="+queue, "CHILD_N=3")
	kill9(t, child)
	c := be.Client()
	if n, _ := c.Do(ctx, c.B().Hlen().Key(prefix+"unacked").Build()).AsInt64(); n != 3 {
		t.Fatalf("the killed consumer left %d unacked messages, want 3", n)
	}
	time.Sleep(1100 * time.Millisecond) // older than the Python worker's visibility timeout
	py.worker(t, queue, "REDIS_VISIBILITY_TIMEOUT=1", "REDIS_GLOBAL_KEYPREFIX="+prefix)
	for i, res := range results {
		v, err := res.Get(ctx)
		if err != nil || fmt.Sprint(v) != fmt.Sprint(i+100) {
			t.Fatalf("task %d: %v, %v", i, v, err)
		}
	}
}

// TestInteropGoRestoresPythonHeld: a Python worker fetches a countdown
// task (holding it unacked until its ETA) and is killed -9; a celerity
// worker restores it from kombu's bookkeeping after its visibility
// timeout, sees it as redelivered and runs it at its ETA.
func TestInteropGoRestoresPythonHeld(t *testing.T) {
	t.Parallel()
	py := newPython(t)
	queue := uniqueQueue(t)
	prefix := queue + ":"
	t.Cleanup(func() { deletePrefix(t, py.url, prefix) })
	app, _, be := newApp(t, py.url, engine.Config{TaskDefaultQueue: queue},
		redis.WithGlobalKeyPrefix(prefix), redis.WithVisibilityTimeout(time.Second))
	ctx := ctxT(t, 60*time.Second)
	stop, kill := py.worker(t, queue, "REDIS_GLOBAL_KEYPREFIX="+prefix)
	res, err := app.SendTask(ctx, "interop.add", []any{40, 2}, nil, engine.Countdown(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	forget(t, be, []string{res.ID}, func(id string) string { return id })
	c := be.Client()
	for {
		n, _ := c.Do(ctx, c.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
		if n == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the Python worker never fetched the task")
		}
		time.Sleep(20 * time.Millisecond)
	}
	kill()
	stop()
	var mu sync.Mutex
	var redelivered, ran bool
	interoptest.RegisterTasks(app, func(tk *engine.Task) {
		mu.Lock()
		ran, redelivered = true, tk.Redelivered
		mu.Unlock()
	})
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 2})
	v, err := res.Get(ctx)
	if err != nil || fmt.Sprint(v) != "42" {
		t.Fatalf("restored task: %v, %v", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !ran || !redelivered {
		t.Fatalf("ran by celerity=%v, redelivered=%v", ran, redelivered)
	}
}
