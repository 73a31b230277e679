package control_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/amqp"
	"github.com/celerity-go/celerity/transport/redis"
)

// These tests run against the real brokers and the real Python Celery:
// Redis DB 9 (shared with the CLI's remote-control tests, which prefix
// their keys; what Python leaves is deleted when the tests end) and a
// RabbitMQ vhost created for them with rabbitmqctl and deleted after.

const redisDB = 9

var vhost = brokertest.Vhost{Prefix: "celerity-control-test-"}

func TestMain(m *testing.M) {
	code := m.Run()
	vhost.Delete()
	if redisUsed.Load() {
		cleanRedis()
	}
	os.Exit(code)
}

var redisUsed atomic.Bool

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// redisURL is the test Redis with this package's DB.
func redisURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(brokertest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", redisDB)
	redisUsed.Store(true)
	return u.String()
}

// cleanRedis deletes the unprefixed keys the Python processes left in
// DB 9 (binding sets, their queues). The CLI's tests share the DB with
// prefixed keys, so it is not flushed.
func cleanRedis() {
	raw := os.Getenv("CELERITY_TEST_REDIS_URL")
	if raw == "" {
		raw = "redis://127.0.0.1:6379/0"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	u.Path = fmt.Sprintf("/%d", redisDB)
	opt, err := rueidis.ParseURL(u.String())
	if err != nil {
		return
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pattern := range []string{"_kombu.binding.*", "pyq-*"} {
		var cursor uint64
		for {
			e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				break
			}
			if len(e.Elements) > 0 {
				c.Do(ctx, c.B().Del().Key(e.Elements...).Build())
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

func amqpURL(t *testing.T) string {
	t.Helper()
	return vhost.URL(t)
}

// brokerCase is one broker the interop tests run on.
type brokerCase struct {
	name      string
	url       string
	open      func(ctx context.Context) (transport.Broker, error)
	pyBackend string // result_backend of the Python worker
}

func brokerCases() []brokerCase {
	return []brokerCase{{name: "redis"}, {name: "amqp", pyBackend: "rpc://"}}
}

func (bc *brokerCase) setup(t *testing.T) {
	t.Helper()
	switch bc.name {
	case "redis":
		bc.url = redisURL(t)
		prefix := brokertest.Prefix(t)
		brokertest.CleanupRedisPrefix(t, bc.url, prefix)
		bc.open = func(ctx context.Context) (transport.Broker, error) {
			return redis.NewBroker(ctx, bc.url, redis.WithGlobalKeyPrefix(prefix))
		}
		bc.pyBackend = bc.url
	case "amqp":
		bc.url = amqpURL(t)
		bc.open = func(ctx context.Context) (transport.Broker, error) { return amqp.NewBroker(ctx, bc.url) }
	}
}

// goNode is a celerity worker on a real broker with its control server.
type goNode struct {
	name  string
	queue string
	app   *engine.App
	w     *engine.Worker
	bus   control.Bus
	gate  chan struct{}
}

func startGoNode(t *testing.T, bc *brokerCase) *goNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bc.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := randHex(4)
	n := &goNode{name: "gow-" + id + "@interop", queue: "ctl-" + id, gate: make(chan struct{})}
	n.app = engine.MustNew(engine.Config{Broker: b, Hostname: n.name, TaskDefaultQueue: n.queue})
	engine.Register2(n.app, "ctl.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	engine.Register0(n.app, "ctl.block", func(ctx context.Context) (bool, error) {
		select {
		case <-n.gate:
			return true, nil
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	})
	n.w, err = n.app.Worker(engine.WorkerConfig{Concurrency: 2, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.bus, err = control.Open(ctx, b, bc.url)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(n.bus, n.w, control.ServerOptions{})
	ready := make(chan struct{})
	n.app.AddHooks(engine.Hooks{WorkerReady: func(*engine.Worker) { close(ready) }})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.w.Run(runCtx) }()
	<-ready
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(n.gate)
		stop()
		<-done
		srv.Close()
		n.bus.Close()
		n.app.Close()
	})
	return n
}

// pyCelery runs `python3 -m celery -A py_app args...` on bc and returns
// its standard output.
func pyCelery(t *testing.T, bc *brokerCase, args ...string) []byte {
	t.Helper()
	dir := brokertest.Celery(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokertest.Python, append([]string{"-m", "celery", "-A", "py_app"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+bc.url, "CELERY_RESULT_BACKEND="+bc.pyBackend)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("celery %v: %v\nstdout: %s\nstderr: %s", args, err, out, stderr.Bytes())
	}
	return out
}

// pyReply runs a Python inspect/control command with -j addressed to
// node and returns node's reply.
func pyReply(t *testing.T, bc *brokerCase, node string, args ...string) json.RawMessage {
	t.Helper()
	out := pyCelery(t, bc, append(args, "-j", "-t", "10", "-d", node)...)
	// inspect prints {node: reply}, control [{node: reply}, ...].
	replies := map[string]json.RawMessage{}
	out = bytes.TrimSpace(out)
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(out, &list); err == nil {
		for _, m := range list {
			for k, v := range m {
				replies[k] = v
			}
		}
	} else if err := json.Unmarshal(out, &replies); err != nil {
		t.Fatalf("celery %v: %v: %s", args, err, out)
	}
	r, ok := replies[node]
	if !ok {
		t.Fatalf("celery %v: no reply from %s: %s", args, node, out)
	}
	return r
}

// TestPythonCeleryInspectsAndControlsGoWorker: `celery inspect` and
// `celery control` of Python Celery 5.2.6 see and drive a celerity
// worker, on Redis and on RabbitMQ.
func TestPythonCeleryInspectsAndControlsGoWorker(t *testing.T) {
	t.Parallel()
	for _, bc := range brokerCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Celery(t)
			bc.setup(t)
			n := startGoNode(t, &bc)
			ctx := context.Background()

			if r := pyReply(t, &bc, n.name, "inspect", "ping"); string(r) != `{"ok": "pong"}` {
				t.Errorf("inspect ping: %s", r)
			}
			var names []string
			decode(t, pyReply(t, &bc, n.name, "inspect", "registered"), &names)
			if !slices.Equal(names, []string{"ctl.add", "ctl.block"}) {
				t.Errorf("inspect registered: %v", names)
			}
			var stats map[string]any
			decode(t, pyReply(t, &bc, n.name, "inspect", "stats"), &stats)
			if int(stats["pid"].(float64)) != os.Getpid() || stats["pool"] == nil || stats["broker"] == nil {
				t.Errorf("inspect stats: %v", stats)
			}

			running, err := n.app.SendTask(ctx, "ctl.block", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the task to run", func() bool { return len(n.w.Active()) == 1 })
			var active []requestInfo
			decode(t, pyReply(t, &bc, n.name, "inspect", "active"), &active)
			if len(active) != 1 || active[0].ID != running.ID || active[0].Name != "ctl.block" {
				t.Errorf("inspect active: %+v", active)
			}

			// celery control revoke: a task our worker holds for its ETA
			// is revoked and discarded when due.
			held, err := n.app.SendTask(ctx, "ctl.add", []any{1, 2}, nil, engine.Countdown(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the task to be held", func() bool { return len(n.w.Scheduled()) == 1 })
			var reply map[string]string
			decode(t, pyReply(t, &bc, n.name, "control", "revoke", held.ID), &reply)
			if reply["ok"] != "tasks "+held.ID+" flagged as revoked" {
				t.Errorf("control revoke: %v", reply)
			}
			if !slices.Contains(n.w.Revoked(), held.ID) {
				t.Errorf("revoked ids: %v", n.w.Revoked())
			}
			eventually(t, "the revoked task to be discarded", func() bool { return n.w.Stats().Revoked.Load() == 1 })
			if n.w.Stats().Succeeded.Load() != 0 {
				t.Error("a revoked task ran")
			}

			// celery control add_consumer / cancel_consumer change the
			// queues our worker consumes, as inspect active_queues shows.
			extra := "extra-" + randHex(4)
			activeQueues := func() []string {
				var qs []kombuQueueName
				decode(t, pyReply(t, &bc, n.name, "inspect", "active_queues"), &qs)
				return queueNames(qs)
			}
			decode(t, pyReply(t, &bc, n.name, "control", "add_consumer", extra), &reply)
			if reply["ok"] != "add consumer "+extra {
				t.Errorf("control add_consumer: %v", reply)
			}
			if qs := activeQueues(); !slices.Contains(qs, extra) {
				t.Errorf("inspect active_queues after add_consumer: %v", qs)
			}
			if _, err := n.app.SendTask(ctx, "ctl.add", []any{2, 3}, nil, engine.Queue(extra)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the task sent to the added queue to run", func() bool { return n.w.Stats().Succeeded.Load() == 1 })
			decode(t, pyReply(t, &bc, n.name, "control", "cancel_consumer", extra), &reply)
			if reply["ok"] != "no longer consuming from "+extra {
				t.Errorf("control cancel_consumer: %v", reply)
			}
			if qs := activeQueues(); slices.Contains(qs, extra) || !slices.Equal(qs, n.w.Config().Queues) {
				t.Errorf("inspect active_queues after cancel_consumer: %v", qs)
			}
		})
	}
}

// TestGoClientControlsPythonWorker: celerity's client pings and inspects
// a Python Celery worker, and the Python worker's mingle (hello) reads a
// celerity worker's revoked ids, on Redis and on RabbitMQ.
func TestGoClientControlsPythonWorker(t *testing.T) {
	t.Parallel()
	for _, bc := range brokerCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			dir := brokertest.Celery(t)
			bc.setup(t)
			goW := startGoNode(t, &bc)
			goW.app.Revoke(false, "revoked-before-python-started")

			pyNode := "pyw-" + randHex(4) + "@interop"
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, brokertest.Python, "-m", "celery", "-A", "py_app", "worker", "-P", "solo",
				"-n", pyNode, "-Q", "pyq-"+randHex(4), "-l", "info")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+bc.url, "CELERY_RESULT_BACKEND="+bc.pyBackend)
			var log bytes.Buffer
			cmd.Stdout, cmd.Stderr = &log, &log
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				cmd.Wait()
				if t.Failed() {
					t.Logf("python worker log:\n%s", log.String())
				}
			})

			c := control.NewClient(goW.bus, control.ClientOptions{})
			defer c.Close()
			var pong []control.Reply
			deadline := time.Now().Add(40 * time.Second)
			for len(pong) == 0 && time.Now().Before(deadline) {
				var err error
				pong, err = c.Ping(context.Background(), time.Second, pyNode)
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(pong) != 1 || pong[0].Node != pyNode || string(pong[0].Value) != `{"ok": "pong"}` {
				t.Fatalf("ping of the Python worker: %+v", pong)
			}
			var names []string
			decode(t, call(t, c, "registered", nil, pyNode)[pyNode], &names)
			if !slices.Contains(names, "interop.add") {
				t.Errorf("registered on the Python worker: %v", names)
			}
			// The Python worker's mingle asked our worker (hello) and took
			// its revoked ids.
			var revoked []string
			decode(t, call(t, c, "revoked", nil, pyNode)[pyNode], &revoked)
			if !slices.Contains(revoked, "revoked-before-python-started") {
				t.Errorf("revoked on the Python worker: %v (log: %s)", revoked, grep(log.String(), "mingle"))
			}
			// add_consumer from our client: the Python worker consumes the
			// queue, as its active_queues shows.
			extra := "pyextra-" + randHex(4)
			if r := call(t, c, "add_consumer", map[string]any{"queue": extra}, pyNode)[pyNode]; string(r) != `{"ok": "add consumer `+extra+`"}` {
				t.Errorf("add_consumer on the Python worker: %s", r)
			}
			eventually(t, "the Python worker to consume "+extra, func() bool {
				var queues []kombuQueueName
				decode(t, call(t, c, "active_queues", nil, pyNode)[pyNode], &queues)
				return slices.Contains(queueNames(queues), extra)
			})
			// Both workers answer a broadcast without destination.
			replies, err := c.Call(context.Background(), control.Call{Method: "ping", Limit: 2, Timeout: 5 * time.Second,
				Destination: []string{pyNode, goW.name}})
			if err != nil || len(replies) != 2 {
				t.Errorf("ping of both workers: %+v, %v", replies, err)
			}
		})
	}
}

// kombuQueueName is the name of a kombu queue dict (active_queues).
type kombuQueueName struct {
	Name string `json:"name"`
}

func queueNames(qs []kombuQueueName) []string {
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return names
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRedisBusKeyPrefix: with kombu's global_keyprefix the channels,
// binding set and reply lists carry the prefix (a bus without it does not
// see the commands), and a Go worker and client on Redis talk through it.
func TestRedisBusKeyPrefix(t *testing.T) {
	t.Parallel()
	base := redisURL(t)
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, base, prefix)
	ctx := context.Background()
	bus, err := control.Open(ctx, nil, base+"?global_keyprefix="+prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	plain, err := control.OpenRedis(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	node := "pfx-" + randHex(4) + "@host"
	startNode(t, bus, nodeConfig{hostname: node})

	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	if r := call(t, c, "ping", nil, node)[node]; string(r) != `{"ok":"pong"}` {
		t.Errorf("ping through the prefixed bus: %s", r)
	}
	other := control.NewClient(plain, control.ClientOptions{})
	defer other.Close()
	if replies, err := other.Ping(ctx, 300*time.Millisecond, node); err != nil || len(replies) != 0 {
		t.Errorf("unprefixed client reached the prefixed worker: %v, %v", replies, err)
	}

	// The event channel is "<prefix>/9.celeryev/<rk>".
	opt, err := rueidis.ParseURL(base)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	raw, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	got := make(chan string, 4)
	dc, release := raw.Dedicate()
	defer release()
	dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) {
		select {
		case got <- m.Channel:
		default:
		}
	}})
	if err := dc.Do(ctx, dc.B().Psubscribe().Pattern(prefix+"/9.celeryev/*").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishEvent(ctx, "worker.heartbeat", &control.Message{Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	rb := bus.(*control.RedisBus)
	if err := rb.PublishEvents(ctx, []string{"task.multi", "worker.online"},
		[]*control.Message{{Body: []byte("[]")}, {Body: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if err := rb.PublishEvents(ctx, []string{"x"}, nil); err == nil {
		t.Error("PublishEvents with mismatched lengths: no error")
	}
	for _, want := range []string{"worker.heartbeat", "task.multi", "worker.online"} {
		select {
		case ch := <-got:
			if ch != prefix+"/9.celeryev/"+want {
				t.Errorf("channel %q, want %s", ch, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event on the prefixed channel")
		}
	}
	dc.Close()
}
