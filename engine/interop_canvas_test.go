package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport/redis"
)

// canvasDB is the Redis database the canvas interop tests own: Python
// Celery cannot be given a key prefix from the interop scripts, so the
// tests isolate themselves by database and flush it.
const canvasDB = 7

// interopEnv is a Go app and the Python side sharing Redis DB canvasDB.
type interopEnv struct {
	app *engine.App
	url string
	dir string
	env []string
}

func newInteropEnv(t *testing.T) *interopEnv {
	t.Helper()
	base := brokertest.RedisURL(t)
	dir := brokertest.Celery(t)
	i := strings.LastIndex(base, "/")
	url := base[:i] + "/7"
	flush := func() {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{strings.TrimPrefix(base[:i], "redis://")}, SelectDB: canvasDB, DisableCache: true})
		if err != nil {
			t.Fatalf("redis: %v", err)
		}
		defer c.Close()
		if err := c.Do(context.Background(), c.B().Flushdb().Build()).Error(); err != nil {
			t.Fatalf("flushdb %d: %v", canvasDB, err)
		}
	}
	flush()
	t.Cleanup(flush)
	ctx := context.Background()
	b, err := redis.NewBroker(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	be, err := redis.NewBackend(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	app, err := engine.New(engine.Config{Broker: b, Backend: be, Hostname: "go-canvas@test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	// The interop tasks of ../shared/interop/py_app.py, in Go.
	engine.Register2(app, "interop.add", func(_ context.Context, x, y float64) (float64, error) { return x + y, nil }, engine.Params("x", "y"))
	engine.Register2(app, "interop.mul", func(_ context.Context, x, y float64) (float64, error) { return x * y, nil }, engine.Params("x", "y"))
	engine.Register1(app, "interop.xsum", func(_ context.Context, xs []float64) (float64, error) {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s, nil
	}, engine.Params("numbers"))
	env := append(os.Environ(), "CELERY_BROKER_URL="+url, "CELERY_RESULT_BACKEND="+url, "PYTHONDONTWRITEBYTECODE=1")
	return &interopEnv{app: app, url: url, dir: dir, env: env}
}

// goWorker runs a Go worker on queues until the test ends.
func (e *interopEnv) goWorker(t *testing.T, queues ...string) {
	t.Helper()
	w, err := e.app.Worker(engine.WorkerConfig{Queues: queues, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// pyWorker runs `celery worker -P solo` from the interop directory on
// queue until the test ends.
func (e *interopEnv) pyWorker(t *testing.T, queue string) {
	t.Helper()
	interoptest.Worker(t, e.dir, e.env, "py_app", queue)
}

// python runs an interop script and returns its JSON output lines.
func (e *interopEnv) python(t *testing.T, stdin []byte, args ...string) []map[string]any {
	t.Helper()
	out := interoptest.Script(t, e.dir, e.env, stdin, 60*time.Second, args...)
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("python output %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestInteropPythonCanvasOnGoWorker: chain, group and chord built by the
// Python client run on a Go worker; Python reads the results.
func TestInteropPythonCanvasOnGoWorker(t *testing.T) {
	e := newInteropEnv(t)
	// Celery applies apply_async(queue=...) to a chain's first task only:
	// later steps go to the default queue, so the Go worker serves it too.
	e.goWorker(t, "canvas-go", "celery")
	sent := interoptest.Script(t, e.dir, e.env, nil, 60*time.Second, "py_send.py", "chain", "group", "chord", "--queue", "canvas-go")
	e.collectExpected(t, sent, 5) // chain, 3 group members, chord
}

// collectExpected reads with py_collect.py the results of what sent (JSON
// lines with "id", "kind", "expect", as py_send.py prints them) names, n
// in all, and checks that each is what was expected.
func (e *interopEnv) collectExpected(t *testing.T, sent []byte, n int) {
	t.Helper()
	got := e.python(t, sent, "py_collect.py", "-", "--timeout", "20")
	if len(got) != n {
		t.Fatalf("collected %d results, want %d: %v", len(got), n, got)
	}
	for _, r := range got {
		if r["ok"] != true {
			t.Errorf("%v: status %v result %v (want %v)", r["kind"], r["status"], r["result"], r["expect"])
		}
	}
}

// TestInteropGoCanvasOnPythonWorker: chain, group and chord built in Go
// run on a Python worker; Go reads the results.
func TestInteropGoCanvasOnPythonWorker(t *testing.T) {
	e := newInteropEnv(t)
	e.pyWorker(t, "canvas-py")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := func(s *engine.Signature) *engine.Signature { s.Options.Queue = "canvas-py"; return s }
	chain, err := e.app.ApplyChain(ctx, q(engine.Sig("interop.add", 2, 3)), q(engine.Sig("interop.mul", 4)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := chain.Get(ctx); err != nil || v != float64(20) {
		t.Fatalf("chain on Python = %v, %v; want 20", v, err)
	}
	g, err := e.app.ApplyGroup(ctx, q(engine.Sig("interop.add", 1, 1)), q(engine.Sig("interop.add", 2, 2)), q(engine.Sig("interop.mul", 3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Get(ctx); err != nil || len(v) != 3 || v[0] != float64(2) || v[1] != float64(4) || v[2] != float64(9) {
		t.Fatalf("group on Python = %v, %v; want [2 4 9]", v, err)
	}
	chord, err := e.app.ApplyChord(ctx, []*engine.Signature{q(engine.Sig("interop.add", 1, 2)), q(engine.Sig("interop.add", 3, 4)), q(engine.Sig("interop.mul", 2, 5))},
		q(engine.Sig("interop.xsum")))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := chord.Get(ctx); err != nil || v != float64(20) {
		t.Fatalf("chord on Python = %v, %v; want 20", v, err)
	}
}

// nestedCanvasScript sends, with the Python client, canvases nested in
// canvases (on the queue named by argv[1]) and prints a py_collect.py
// input line for each: what Celery 5.2.6 unrolls (a group in a group, a
// chain in a chain) and what it counts by its last result (a chain or a
// chord in a chord header).
const nestedCanvasScript = `
import json, sys
from celery import chain, chord, group
from py_app import add, mul, xsum
q = {'queue': sys.argv[1]}
def out(kind, res, expect, children=None):
    line = {'kind': kind, 'id': res.id, 'expect': expect}
    if children:
        line['children'] = children
    print(json.dumps(line), flush=True)
g = group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)).apply_async(**q)
out('group(group)', g, [2, 4, 6], [r.id for r in g.results])
out('chain(chain)', chain(add.s(1, 1), chain(mul.s(3), add.s(1)), mul.s(2)).apply_async(**q), 14)
out('chord(chain)', chord([chain(add.s(1, 1), mul.s(3)), add.s(2, 2)], xsum.s()).apply_async(**q), 10)
out('chord(chord)', chord([chord([add.s(1, 1), add.s(2, 2)], xsum.s()), add.s(2, 2)], xsum.s()).apply_async(**q), 10)
out('chord(group)', chord([group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)], xsum.s()).apply_async(**q), 12)
`

// TestInteropPythonNestedCanvasOnGoWorker: canvases nested in canvases,
// built by the Python client, run on a Go worker; Python reads the results.
func TestInteropPythonNestedCanvasOnGoWorker(t *testing.T) {
	e := newInteropEnv(t)
	e.goWorker(t, "nested-go", "celery")
	sent := interoptest.Script(t, e.dir, e.env, nil, 60*time.Second, "-c", nestedCanvasScript, "nested-go")
	e.collectExpected(t, sent, 7) // 3 group members, 4 results
}

// TestInteropGoNestedCanvasOnPythonWorker: the same canvases built in Go
// run on a Python worker; Go reads the results.
func TestInteropGoNestedCanvasOnPythonWorker(t *testing.T) {
	e := newInteropEnv(t)
	e.pyWorker(t, "nested-py")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := func(name string, args ...any) *engine.Signature {
		s := engine.Sig(name, args...)
		s.Options.Queue = "nested-py"
		return s
	}
	g, err := e.app.ApplyGroup(ctx, engine.GroupSig(q("interop.add", 1, 1), q("interop.add", 2, 2)), q("interop.add", 3, 3))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Get(ctx); err != nil || fmt.Sprint(v) != "[2 4 6]" {
		t.Errorf("group(group) on Python = %v, %v; want [2 4 6]", v, err)
	}
	for _, c := range []struct {
		name string
		sig  *engine.Signature
		want float64
	}{
		{"chain(chain)", engine.ChainSig(q("interop.add", 1, 1), engine.ChainSig(q("interop.mul", 3), q("interop.add", 1)), q("interop.mul", 2)), 14},
		{"chord(chain)", engine.ChordSig([]*engine.Signature{engine.ChainSig(q("interop.add", 1, 1), q("interop.mul", 3)), q("interop.add", 2, 2)}, q("interop.xsum")), 10},
		{"chord(chord)", engine.ChordSig([]*engine.Signature{engine.ChordSig([]*engine.Signature{q("interop.add", 1, 1), q("interop.add", 2, 2)}, q("interop.xsum")), q("interop.add", 2, 2)}, q("interop.xsum")), 10},
		{"chord(group)", engine.ChordSig([]*engine.Signature{engine.GroupSig(q("interop.add", 1, 1), q("interop.add", 2, 2)), q("interop.add", 3, 3)}, q("interop.xsum")), 12},
	} {
		res, err := e.app.Apply(ctx, c.sig)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if v, err := res.Get(ctx); err != nil || v != c.want {
			t.Errorf("%s on Python = %v, %v; want %v", c.name, v, err, c.want)
		}
	}
	// The Python worker applies the group the chain ends in with the
	// member ids the Go client gave.
	res, err := e.app.Apply(ctx, engine.ChainSig(q("interop.add", 1, 1), engine.GroupSig(q("interop.mul", 3), q("interop.add", 1))))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "[6 3]" {
		t.Errorf("chain(add, group(mul, add)) on Python = %v, %v; want [6 3]", v, err)
	}
}

// TestInteropChordSplitAcrossGoAndPython: a chord whose header tasks run
// on a Go worker and a Python worker; Redis counts the parts (Celery 5.2's
// sorted set) and whichever finishes last sends the body.
func TestInteropChordSplitAcrossGoAndPython(t *testing.T) {
	e := newInteropEnv(t)
	e.goWorker(t, "split-go")
	e.pyWorker(t, "split-py")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	on := func(queue string, s *engine.Signature) *engine.Signature { s.Options.Queue = queue; return s }
	for _, body := range []string{"split-go", "split-py"} {
		var header []*engine.Signature
		want := 0.0
		for i := range 6 {
			queue := "split-go"
			if i%2 == 1 {
				queue = "split-py"
			}
			header = append(header, on(queue, engine.Sig("interop.mul", i, 10)))
			want += float64(i * 10)
		}
		res, err := e.app.ApplyChord(ctx, header, on(body, engine.Sig("interop.xsum")))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := res.Get(ctx); err != nil || v != want {
			t.Fatalf("split chord, body on %s = %v, %v; want %v", body, v, err, want)
		}
	}
}

// TestInteropChunksMapStarmap: Go sends Celery's built-in map, starmap and
// chunks tasks; a Python worker runs them (its celery.* built-ins), then a
// Go worker runs the same messages.
func TestInteropChunksMapStarmap(t *testing.T) {
	e := newInteropEnv(t)
	run := func(t *testing.T, queue string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := func(s *engine.Signature) *engine.Signature { s.Options.Queue = queue; return s }
		xsum := engine.Sig("interop.xsum")
		xsum.Options.Queue = queue
		m, err := e.app.Map(ctx, xsum, []any{[]int{1, 2}, []int{3, 4}})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := m.Get(ctx); err != nil || fmt.Sprint(v) != "[3 7]" {
			t.Fatalf("map on %s = %v, %v", queue, v, err)
		}
		sm, err := e.app.Apply(ctx, q(mapSig("celery.starmap", engine.Sig("interop.add"), []any{[]int{1, 2}, []int{3, 4}})))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := sm.Get(ctx); err != nil || fmt.Sprint(v) != "[3 7]" {
			t.Fatalf("starmap on %s = %v, %v", queue, v, err)
		}
		add := engine.Sig("interop.add")
		add.Options.Queue = queue
		g, err := e.app.Chunks(ctx, add, [][]any{{1, 1}, {2, 2}, {3, 3}}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := g.Get(ctx); err != nil || fmt.Sprint(v) != "[[2 4] [6]]" {
			t.Fatalf("chunks on %s = %v, %v", queue, v, err)
		}
	}
	t.Run("python", func(t *testing.T) {
		e.pyWorker(t, "builtins-py")
		run(t, "builtins-py")
	})
	t.Run("go", func(t *testing.T) {
		e.goWorker(t, "builtins-go")
		run(t, "builtins-go")
	})
}

// mapSig builds by hand the signature Celery's task.starmap(it) sends, to
// check it independently of the app's encoder.
func mapSig(name string, task *engine.Signature, items []any) *engine.Signature {
	raw, _ := json.Marshal(map[string]any{"task": task, "it": items})
	kind := "xstarmap"
	if name == "celery.map" {
		kind = "xmap"
	}
	return &engine.Signature{Task: name, Args: json.RawMessage("[]"), Kwargs: raw, SubtaskType: kind}
}

// TestInteropChildrenOfGoTask: tasks a Go handler sends, and the next step
// of a chain, are a task's children as Python Celery reads them: listed in
// AsyncResult.children, each with the sender as parent_id in its own
// result.
func TestInteropChildrenOfGoTask(t *testing.T) {
	e := newInteropEnv(t)
	engine.RegisterRaw(e.app, "go.fanout", func(ctx context.Context, _ *engine.Task) error {
		for _, id := range []string{"fan-kid-1", "fan-kid-2"} {
			if _, err := e.app.SendTask(ctx, "interop.add", []any{1, 2}, nil, engine.TaskID(id)); err != nil {
				return err
			}
		}
		return nil
	})
	e.goWorker(t, "celery")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.app.SendTask(ctx, "go.fanout", nil, nil, engine.TaskID("fan-parent")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"fan-parent", "fan-kid-1", "fan-kid-2"} {
		if _, err := e.app.Result(id).Get(ctx); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	got := e.python(t, nil, "-c", `
import json
from py_app import app
r = app.AsyncResult('fan-parent')
print(json.dumps({
    'children': [c.id for c in r.children],
    'parents': [app.backend.get_task_meta(c.id).get('parent_id') for c in r.children],
}))
`)
	if len(got) != 1 {
		t.Fatalf("python printed %v", got)
	}
	if fmt.Sprint(got[0]["children"]) != "[fan-kid-1 fan-kid-2]" || fmt.Sprint(got[0]["parents"]) != "[fan-parent fan-parent]" {
		t.Fatalf("Python reads children %v with parents %v; want [fan-kid-1 fan-kid-2], each from fan-parent", got[0]["children"], got[0]["parents"])
	}

	// A chain built in Python and run by the Go worker: the first step's
	// result lists the next step, as a Python worker's would.
	got = e.python(t, nil, "-c", `
import json
from celery import chain
from py_app import app
res = chain(app.signature('interop.add', args=(1, 2)), app.signature('interop.mul', args=(3,))).apply_async()
value = res.get(timeout=20)
print(json.dumps({'value': value, 'last': res.id, 'children': [c.id for c in app.AsyncResult(res.parent.id).children]}))
`)
	if len(got) != 1 || got[0]["value"] != float64(9) || fmt.Sprint(got[0]["children"]) != fmt.Sprint([]any{got[0]["last"]}) {
		t.Fatalf("Python chain on the Go worker: %v; want value 9 and the first step's children [last step]", got)
	}
}
