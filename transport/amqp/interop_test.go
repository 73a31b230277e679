package amqp

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
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport/redis"
)

// interopPriority is the x-max-priority both sides declare task queues
// with in the interop tests (Celery's task_queue_max_priority).
const interopPriority = 10

// redisResultDB is the Redis database of the interop tests that keep
// results in Redis (records are keyed by fresh task ids and forgotten at
// the end).
const redisResultDB = 12

// python is the Python side of an interop test.
type python struct {
	dir string
	env []string
}

// newPython finds Python Celery (skipping or failing like brokertest) and
// prepares the environment of its processes: the tests' vhost as broker,
// backend as result backend, extra settings.
func newPython(t *testing.T, backend string, extra ...string) *python {
	t.Helper()
	dir := brokertest.Celery(t)
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"CELERITY_INTEROP_DIR="+dir, "PYTHONPATH="+testdata+string(os.PathListSeparator)+dir,
		"CELERY_BROKER_URL="+testURL(t), "CELERY_RESULT_BACKEND="+backend,
		fmt.Sprintf("AMQP_MAX_PRIORITY=%d", interopPriority), "PYTHONDONTWRITEBYTECODE=1")
	return &python{dir: dir, env: append(env, extra...)}
}

// run runs a Python script to completion and returns its stdout.
func (p *python) run(t *testing.T, stdin []byte, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	return interoptest.Script(t, "testdata", p.env, stdin, timeout, append([]string{script}, args...)...)
}

// worker starts `celery worker -P solo` on queue; it is stopped (warm,
// then killed) when the test ends or stop is called.
func (p *python) worker(t *testing.T, queue string) (stop func()) {
	t.Helper()
	stop, _ = interoptest.Worker(t, "testdata", p.env, "interop_app", queue)
	return stop
}

// outcome is one line of interop_send.py, py_send.py or py_collect.py.
type outcome struct {
	Kind   string          `json:"kind"`
	ID     string          `json:"id"`
	Expect json.RawMessage `json:"expect"`
	Status json.RawMessage `json:"status"`
	Result json.RawMessage `json:"result"`
}

func parseLines(t *testing.T, out []byte) []outcome {
	t.Helper()
	var list []outcome
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v outcome
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		list = append(list, v)
	}
	return list
}

// check compares a result read by Python with what the sender expected:
// the value, or the exception type of a FAILURE.
func (o outcome) check() error {
	var expect, status any
	json.Unmarshal(o.Expect, &expect)
	json.Unmarshal(o.Status, &status)
	if list, ok := status.([]any); ok { // a group line of py_send.py
		for _, s := range list {
			if s != "SUCCESS" {
				return fmt.Errorf("group statuses %v", list)
			}
		}
		status = "SUCCESS"
	}
	if status == "FAILURE" {
		var exc struct {
			Type string `json:"exc_type"`
		}
		json.Unmarshal(o.Result, &exc)
		if exc.Type != expect {
			return fmt.Errorf("failed with %s, want %v", o.Result, expect)
		}
		return nil
	}
	var got any
	json.Unmarshal(o.Result, &got)
	if status != "SUCCESS" || !reflect.DeepEqual(got, expect) {
		return fmt.Errorf("status %v result %s, want %s", status, o.Result, o.Expect)
	}
	return nil
}

var pythonKinds = []string{"add", "mul", "xsum", "fail", "sleep", "echo", "group", "echo-types", "retry",
	"countdown", "eta", "expires", "priority-9", "priority-4", "zlib", "bzip2"}

// TestInteropPythonToGoRPC: the real Python client (rpc:// backend) sends
// tasks, in JSON and in msgpack, to a celerity worker, which sends the
// results to the client's reply queue; the Python client reads them.
func TestInteropPythonToGoRPC(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			py := newPython(t, "rpc://", "CELERY_TASK_SERIALIZER="+ser)
			queue := testQueue(t, "py2go")
			app, _ := newApp(t, "", engine.Config{AcceptContent: []string{"json", "msgpack"}, TaskAcksLate: true},
				WithMaxPriority(interopPriority))
			interoptest.RegisterTasks(app, nil)
			runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
			out := py.run(t, nil, 90*time.Second, "interop_send.py", queue, "--wait", "30")
			checkOutcomes(t, parseLines(t, out), pythonKinds)
		})
	}
}

func checkOutcomes(t *testing.T, results []outcome, kinds []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Kind] = true
		if err := r.check(); err != nil {
			t.Errorf("%s (%s): %v", r.Kind, r.ID, err)
		}
	}
	for _, k := range kinds {
		if !seen[k] {
			t.Errorf("no result for %s", k)
		}
	}
}

// redisBackendURL is the Redis result backend URL of the interop tests.
func redisBackendURL(t *testing.T) string {
	t.Helper()
	raw := strings.TrimRight(brokertest.RedisURL(t), "/")
	if i := strings.LastIndex(raw, "/"); i > len("redis://") {
		raw = raw[:i]
	}
	return fmt.Sprintf("%s/%d", raw, redisResultDB)
}

// newRedisBackend connects to the interop Redis result database (the app
// it is given to closes it).
func newRedisBackend(t *testing.T) *redis.Backend {
	t.Helper()
	be, err := redis.NewBackend(ctxT(t, 10*time.Second), redisBackendURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// forgetAtEnd deletes the records of ids when the test ends (register it
// after the app, so that it runs before the app closes the backend).
func forgetAtEnd(t *testing.T, be *redis.Backend, ids *[]string) {
	t.Cleanup(func() {
		for _, id := range *ids {
			be.ForgetResult(context.Background(), id)
		}
	})
}

// TestInteropPythonToGoRedisBackend: Python client and celerity worker on
// RabbitMQ, results in Redis; a second Python process collects them.
func TestInteropPythonToGoRedisBackend(t *testing.T) {
	t.Parallel()
	py := newPython(t, redisBackendURL(t))
	queue := testQueue(t, "py2go-redis")
	var ids []string
	be := newRedisBackend(t)
	app, _ := newApp(t, "", engine.Config{Backend: be, AcceptContent: []string{"json", "msgpack"}},
		WithMaxPriority(interopPriority))
	forgetAtEnd(t, be, &ids)
	interoptest.RegisterTasks(app, nil)
	lines := py.run(t, nil, 60*time.Second, "interop_send.py", queue)
	for _, o := range parseLines(t, lines) {
		ids = append(ids, o.ID)
	}
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
	out := py.run(t, lines, 60*time.Second, filepath.Join(py.dir, "py_collect.py"), "-", "--timeout", "30")
	results := parseLines(t, out)
	for _, o := range results {
		ids = append(ids, o.ID) // group members
	}
	checkOutcomes(t, results, pythonKinds)
}

// everything is a value of every JSON type.
var everything = []any{nil, true, false, 0, -7, 1 << 53, 1.5, -0.25, "", "é✓ \"q\"\n", []any{}, []any{1, []any{2, nil}},
	map[string]any{}, map[string]any{"k": map[string]any{"n": []any{true}}}}

// goCall is one task a celerity client sends to the Python worker.
type goCall struct {
	kind   string
	task   string
	args   []any
	kwargs map[string]any
	opts   []engine.Option
	expect any // value, "ValueError", or "PENDING"
}

var goCalls = []goCall{
	{kind: "add", task: "interop.add", args: []any{2, 3}, expect: 5.0},
	{kind: "echo-types", task: "interop.echo", args: everything, kwargs: map[string]any{"kw": everything, "none": nil},
		expect: map[string]any{"args": everything, "kwargs": map[string]any{"kw": everything, "none": nil}}},
	{kind: "fail", task: "interop.fail", args: []any{"boom from go"}, expect: "ValueError"},
	{kind: "retry", task: "interop.retry", args: []any{2}, expect: 2.0},
	{kind: "countdown", task: "interop.add", args: []any{1, 1}, opts: []engine.Option{engine.Countdown(time.Second)}, expect: 2.0},
	{kind: "eta", task: "interop.add", args: []any{2, 2}, opts: []engine.Option{engine.ETA(time.Now().Add(time.Second))}, expect: 4.0},
	{kind: "expires", task: "interop.add", args: []any{3, 3}, opts: []engine.Option{engine.ExpiresIn(time.Minute)}, expect: 6.0},
	// Already expired: the AMQP expiration is "0" and RabbitMQ drops the
	// message before any worker sees it (celery-wire.md pitfall 13).
	{kind: "expired", task: "interop.add", args: []any{3, 4}, opts: []engine.Option{engine.ExpiresAt(time.Now().Add(-5 * time.Second))}, expect: "PENDING"},
	{kind: "priority-9", task: "interop.mul", args: []any{3, 3}, opts: []engine.Option{engine.Priority(9)}, expect: 9.0},
	{kind: "priority-4", task: "interop.mul", args: []any{2, 2}, opts: []engine.Option{engine.Priority(4)}, expect: 4.0},
	{kind: "zlib", task: "interop.xsum", args: []any{[]any{1, 2, 3}}, opts: []engine.Option{engine.Compression("zlib")}, expect: 6.0},
	{kind: "bzip2", task: "interop.xsum", args: []any{[]any{4, 5, 6}}, opts: []engine.Option{engine.Compression("bzip2")}, expect: 15.0},
	{kind: "msgpack", task: "interop.echo", args: everything, opts: []engine.Option{engine.Serializer("msgpack")},
		expect: map[string]any{"args": everything, "kwargs": map[string]any{}}},
	{kind: "msgpack-zlib", task: "interop.add", args: []any{20, 22}, opts: []engine.Option{engine.Serializer("msgpack"), engine.Compression("zlib")}, expect: 42.0},
}

// testGoToPython: a celerity client sends goCalls to the real Python
// worker and reads the results through its backend.
func testGoToPython(t *testing.T, py *python, app *engine.App, queue string, ids *[]string) {
	testGoToPythonCalls(t, py, app, queue, ids, goCalls)
}

func testGoToPythonCalls(t *testing.T, py *python, app *engine.App, queue string, ids *[]string, calls []goCall) {
	ctx := ctxT(t, 90*time.Second)
	type pending struct {
		goCall
		res *engine.AsyncResult[any]
	}
	var ps []pending
	for _, c := range calls {
		res, err := app.SendTask(ctx, c.task, c.args, c.kwargs, append(c.opts, engine.Queue(queue))...)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		ps = append(ps, pending{c, res})
		if ids != nil {
			*ids = append(*ids, res.ID)
		}
	}
	py.worker(t, queue)
	norm := func(v any) any { // through JSON: ints become float64
		raw, _ := json.Marshal(v)
		var out any
		json.Unmarshal(raw, &out)
		return out
	}
	for _, p := range ps {
		if p.expect == "PENDING" {
			continue
		}
		got, err := p.res.Get(ctx)
		switch p.expect {
		case "ValueError":
			var te *engine.TaskError
			if !errors.As(err, &te) || te.Type != "ValueError" || te.Module != "builtins" || fmt.Sprint(te.Args) != "[boom from go]" {
				t.Errorf("%s: err %v, want ValueError('boom from go')", p.kind, err)
			}
		default:
			if err != nil || !reflect.DeepEqual(norm(got), norm(p.expect)) {
				t.Errorf("%s: got %#v, %v; want %#v", p.kind, got, err, p.expect)
			}
		}
	}
	// Everything else ran; the expired message never reached the worker.
	for _, p := range ps {
		if p.expect != "PENDING" {
			continue
		}
		if m, err := p.res.Meta(ctx); err != nil || m.StateName != "PENDING" {
			t.Errorf("%s: %v %v, want PENDING (dropped by RabbitMQ)", p.kind, m.StateName, err)
		}
	}
}

// TestInteropGoToPythonRPC: a celerity client with the rpc:// backend sends
// tasks to the real Python worker (rpc:// too), which sends every result
// to the client's reply queue.
func TestInteropGoToPythonRPC(t *testing.T) {
	t.Parallel()
	py := newPython(t, "rpc://")
	queue := testQueue(t, "go2py")
	app, _ := newApp(t, "", engine.Config{}, WithMaxPriority(interopPriority))
	testGoToPython(t, py, app, queue, nil)
}

// TestInteropGoToPythonRPCMsgpackResults: the Python worker sends its
// rpc:// replies in msgpack (result_serializer); the client transcodes them.
func TestInteropGoToPythonRPCMsgpackResults(t *testing.T) {
	t.Parallel()
	py := newPython(t, "rpc://", "RESULT_SERIALIZER=msgpack")
	queue := testQueue(t, "go2py-msgpack")
	app, _ := newApp(t, "", engine.Config{}, WithMaxPriority(interopPriority))
	testGoToPythonCalls(t, py, app, queue, nil, []goCall{goCalls[0], goCalls[1], goCalls[2]})
}

// TestInteropGoToPythonRedisBackend: as TestInteropGoToPythonRPC with the
// results in Redis.
func TestInteropGoToPythonRedisBackend(t *testing.T) {
	t.Parallel()
	py := newPython(t, redisBackendURL(t))
	queue := testQueue(t, "go2py-redis")
	var ids []string
	be := newRedisBackend(t)
	app, _ := newApp(t, "", engine.Config{Backend: be}, WithMaxPriority(interopPriority))
	forgetAtEnd(t, be, &ids)
	testGoToPython(t, py, app, queue, &ids)
}
