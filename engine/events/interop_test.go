package events_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/engine/events"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/amqp"
	"github.com/celerity-go/celerity/transport/redis"
)

// These tests run against the real brokers and Python Celery: Redis DB 8
// (this package's own; flushed when the tests end) and a RabbitMQ vhost
// created for them with rabbitmqctl and deleted after.

const redisDB = 8

var (
	vhost     = brokertest.Vhost{Prefix: "celerity-events-test-"}
	redisUsed atomic.Bool
)

func TestMain(m *testing.M) {
	code := m.Run()
	vhost.Delete()
	if redisUsed.Load() {
		flushRedis()
	}
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func dbURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = fmt.Sprintf("/%d", redisDB)
	return u.String()
}

func flushRedis() {
	raw := os.Getenv("CELERITY_TEST_REDIS_URL")
	if raw == "" {
		raw = "redis://127.0.0.1:6379/0"
	}
	opt, err := rueidis.ParseURL(dbURL(raw))
	if err != nil {
		return
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Do(ctx, c.B().Flushdb().Build())
}

func amqpURL(t *testing.T) string {
	t.Helper()
	return vhost.URL(t)
}

// brokerCase is one broker the tests run on.
type brokerCase struct {
	name, url, pyBackend string
}

func (bc *brokerCase) setup(t *testing.T) {
	t.Helper()
	switch bc.name {
	case "redis":
		bc.url = dbURL(brokertest.RedisURL(t))
		redisUsed.Store(true)
		bc.pyBackend = bc.url
	case "amqp":
		bc.url = amqpURL(t)
		bc.pyBackend = "rpc://"
	}
}

func (bc *brokerCase) open(t *testing.T) transport.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var b transport.Broker
	var err error
	if bc.name == "redis" {
		b, err = redis.NewBroker(ctx, bc.url)
	} else {
		b, err = amqp.NewBroker(ctx, bc.url)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func brokerCases() []brokerCase { return []brokerCase{{name: "redis"}, {name: "amqp"}} }

// pyProcess starts `python3 -m celery -A py_app args...` on bc; its output
// lines go to lines. It is stopped (SIGTERM) when the test ends.
func pyProcess(t *testing.T, bc *brokerCase, env []string, lines chan<- string, args ...string) {
	t.Helper()
	dir := brokertest.Celery(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, brokertest.Python, append([]string{"-m", "celery", "-A", "py_app"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CELERY_BROKER_URL="+bc.url, "CELERY_RESULT_BACKEND="+bc.pyBackend,
		"PYTHONUNBUFFERED=1"), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var log []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			log = append(log, sc.Text())
			logMu.Unlock()
			if lines != nil {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-scanned
		cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("python %v output:\n%s", args, strings.Join(log, "\n"))
			logMu.Unlock()
		}
	})
}

// startEventingWorker runs a celerity worker on bc with task events and
// heartbeats every 0.5 s, and tasks ev.add(a, b) and ev.fail(msg) (raises
// ValueError(msg)); it returns its app and node name.
func startEventingWorker(t *testing.T, bc *brokerCase) (*engine.App, string) {
	t.Helper()
	bc.setup(t)
	b := bc.open(t)
	node := "gow-" + randHex(4) + "@interop"
	app := engine.MustNew(engine.Config{Broker: b, Hostname: node, TaskDefaultQueue: "evq-" + randHex(4)})
	t.Cleanup(func() { app.Close() })
	engine.Register2(app, "ev.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	engine.Register1(app, "ev.fail", func(_ context.Context, msg string) (int, error) {
		return 0, &engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{msg}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bus, err := control.Open(ctx, b, bc.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() }) // after the worker and dispatcher stopped
	d := events.New(bus, events.Options{TaskEvents: true, HeartbeatInterval: 500 * time.Millisecond,
		FlushInterval: 20 * time.Millisecond})
	d.Attach(app)
	d.Start()
	runWorker(t, app, engine.WorkerConfig{Concurrency: 2}, func() { d.Close() })
	return app, node
}

// TestPythonEventsDumpShowsGoWorker: `celery events --dump` of Python
// Celery 5.2.6 shows a celerity worker's heartbeats and task events, on
// Redis and on RabbitMQ.
func TestPythonEventsDumpShowsGoWorker(t *testing.T) {
	t.Parallel()
	for _, bc := range brokerCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Celery(t)
			app, node := startEventingWorker(t, &bc)

			lines := make(chan string, 1024)
			pyProcess(t, &bc, nil, lines, "events", "--dump")
			sawBeat, sawTask := false, false
			deadline := time.After(40 * time.Second)
			tick := time.NewTicker(300 * time.Millisecond)
			defer tick.Stop()
			for !sawBeat || !sawTask {
				select {
				case l := <-lines:
					if !strings.HasPrefix(l, node+" ") {
						continue
					}
					sawBeat = sawBeat || strings.Contains(l, "] heartbeat: ")
					sawTask = sawTask || (strings.Contains(l, "] task succeeded: ev.add(") && strings.Contains(l, "args=(2, 3)") &&
						strings.Contains(l, "result=5"))
				case <-tick.C:
					// The dumper subscribes after it starts: keep sending.
					if _, err := app.SendTask(context.Background(), "ev.add", []any{2, 3}, nil); err != nil {
						t.Fatal(err)
					}
				case <-deadline:
					t.Fatalf("celery events --dump: heartbeat seen %v, task seen %v", sawBeat, sawTask)
				}
			}
		})
	}
}

// TestReceiverSeesPythonWorkerEvents: celerity's receiver decodes the
// events of a Python worker (celery worker -E): its heartbeats and a
// task's task.multi batch, on Redis and on RabbitMQ.
func TestReceiverSeesPythonWorkerEvents(t *testing.T) {
	t.Parallel()
	for _, bc := range brokerCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Celery(t)
			bc.setup(t)
			b := bc.open(t)
			app := engine.MustNew(engine.Config{Broker: b})
			defer app.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			bus, err := control.Open(ctx, b, bc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer bus.Close()
			var st events.State
			l, err := events.Receive(ctx, bus, "#", nil, st.Apply)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()

			pyNode := "pyw-" + randHex(4) + "@interop"
			queue := "pyq-" + randHex(4)
			pyProcess(t, &bc, []string{"CELERY_TASK_EVENTS=1"}, nil, "worker", "-P", "solo", "-n", pyNode, "-Q", queue, "-l", "info")
			deadline := time.Now().Add(40 * time.Second)
			var id string
			for {
				if time.Now().After(deadline) {
					t.Fatalf("events of the Python worker: %+v", st.Snapshot())
				}
				snap := st.Snapshot()
				alive := false
				for _, w := range snap.Workers {
					alive = alive || (w.Hostname == pyNode && w.Alive(time.Now()) && w.SWIdent == "py-celery")
				}
				if alive && id == "" {
					r, err := app.SendTask(context.Background(), "interop.add", []any{2, 3}, nil, engine.Queue(queue))
					if err != nil {
						t.Fatal(err)
					}
					id = r.ID
				}
				if id != "" {
					if ts, ok := st.Task(id); ok && ts.State == "SUCCESS" {
						if ts.Result != "5" || ts.Name != "interop.add" || ts.Worker != pyNode || ts.Args != "(2, 3)" {
							t.Errorf("task state: %+v", ts)
						}
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestPythonEventStateSeesGoWorker: celery.events.state.State -- the model
// behind Flower's dashboard, task list and API -- built from a celerity
// worker's events shows the worker alive (heartbeats, processed count,
// software) and its tasks with Flower's columns (name, args, result or
// exception, received/started/finished times, runtime of successes: as
// in Celery, task-failed carries none), on Redis and on
// RabbitMQ. Flower itself is not installable on the test machines.
func TestPythonEventStateSeesGoWorker(t *testing.T) {
	t.Parallel()
	for _, bc := range brokerCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Celery(t)
			app, node := startEventingWorker(t, &bc)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, brokertest.Python, "testdata/py_events_state.py", node, "30")
			cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+bc.url)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<16), 1<<22)
			if !sc.Scan() || sc.Text() != "capturing" {
				cmd.Wait()
				t.Fatalf("py_events_state.py did not start: %s", stderr.String())
			}
			scriptDone, sending := make(chan struct{}), make(chan struct{})
			go func() { // until the script has what it waits for
				defer close(sending)
				tick := time.NewTicker(300 * time.Millisecond)
				defer tick.Stop()
				for {
					app.SendTask(ctx, "ev.add", []any{2, 3}, nil)
					app.SendTask(ctx, "ev.fail", []any{"boom"}, nil)
					select {
					case <-tick.C:
					case <-scriptDone:
						return
					}
				}
			}()
			var last string
			for sc.Scan() {
				last = sc.Text()
			}
			err = cmd.Wait()
			close(scriptDone)
			<-sending
			if err != nil {
				t.Fatalf("py_events_state.py: %v\n%s", err, stderr.String())
			}

			var got struct {
				Worker *struct {
					Alive      bool      `json:"alive"`
					Processed  int       `json:"processed"`
					SWIdent    string    `json:"sw_ident"`
					SWVer      string    `json:"sw_ver"`
					Freq       float64   `json:"freq"`
					Loadavg    []float64 `json:"loadavg"`
					Heartbeats int       `json:"heartbeats"`
					Status     string    `json:"status_string"`
				} `json:"worker"`
				Tasks []struct {
					Name      string   `json:"name"`
					State     string   `json:"state"`
					Args      string   `json:"args"`
					Kwargs    string   `json:"kwargs"`
					Result    *string  `json:"result"`
					Exception *string  `json:"exception"`
					Runtime   *float64 `json:"runtime"`
					Received  *float64 `json:"received"`
					Started   *float64 `json:"started"`
					Succeeded *float64 `json:"succeeded"`
					Failed    *float64 `json:"failed"`
					Ready     bool     `json:"ready"`
					Hostname  string   `json:"hostname"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal([]byte(last), &got); err != nil {
				t.Fatalf("py_events_state.py output %q: %v", last, err)
			}
			w := got.Worker
			if w == nil || !w.Alive || w.Processed < 2 || w.SWIdent != "celerity" || w.SWVer == "" ||
				w.Freq != 0.5 || len(w.Loadavg) != 3 || w.Heartbeats == 0 || w.Status != "ONLINE" {
				t.Errorf("State worker %s: %+v", node, w)
			}
			var sawOK, sawFail bool
			for _, ts := range got.Tasks {
				if ts.Hostname != node || !ts.Ready || ts.Received == nil || ts.Started == nil || *ts.Started < *ts.Received {
					t.Errorf("State task: %+v", ts)
				}
				switch ts.Name {
				case "ev.add":
					sawOK = true
					if ts.State != "SUCCESS" || ts.Args != "(2, 3)" || ts.Kwargs != "{}" || ts.Result == nil ||
						*ts.Result != "5" || ts.Succeeded == nil || *ts.Succeeded < *ts.Started || ts.Runtime == nil || *ts.Runtime < 0 {
						t.Errorf("State of ev.add: %+v", ts)
					}
				case "ev.fail":
					sawFail = true
					if ts.State != "FAILURE" || ts.Args != "('boom',)" || ts.Exception == nil ||
						*ts.Exception != "ValueError('boom')" || ts.Failed == nil || *ts.Failed < *ts.Started {
						t.Errorf("State of ev.fail: %+v (exception %v)", ts, ts.Exception)
					}
				}
			}
			if !sawOK || !sawFail {
				t.Errorf("State tasks of %s: success seen %v, failure seen %v: %s", node, sawOK, sawFail, last)
			}
		})
	}
}
