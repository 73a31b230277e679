package control_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/transport/memory"
)

func TestPingAndNodeSelection(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	startNode(t, bus, nodeConfig{hostname: "a@host"})
	startNode(t, bus, nodeConfig{hostname: "b@host"})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	for _, tc := range []struct {
		name string
		call control.Call
		want []string
	}{
		{"all", control.Call{}, []string{"a@host", "b@host"}},
		{"destination", control.Call{Destination: []string{"b@host"}}, []string{"b@host"}},
		{"destination unknown", control.Call{Destination: []string{"c@host"}}, nil},
		{"glob", control.Call{Pattern: "a@*", Matcher: "glob"}, []string{"a@host"}},
		{"pcre", control.Call{Pattern: "[ab]@ho", Matcher: "pcre"}, []string{"a@host", "b@host"}},
		{"pattern without matcher is ignored", control.Call{Pattern: "zzz"}, []string{"a@host", "b@host"}},
	} {
		tc.call.Method = "ping"
		tc.call.Timeout = 300 * time.Millisecond
		replies, err := c.Call(context.Background(), tc.call)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, r := range replies {
			if string(r.Value) != `{"ok":"pong"}` {
				t.Errorf("%s: %s replied %s", tc.name, r.Node, r.Value)
			}
			got = append(got, r.Node)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: replies from %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		node, pattern, matcher string
		want                   bool
	}{
		{"w1@host", "w1@*", "glob", true},
		{"w1@host", "w?@host", "glob", true},
		{"w1@host", "w[12]@host", "glob", true},
		{"w3@host", "w[!12]@host", "glob", true},
		{"w1@host", "w[!12]@host", "glob", false},
		{"w1@host", "w1", "glob", false},
		{"w1@a.b", "*.b", "glob", true},
		{"w1@host", "w1", "pcre", true}, // re.match: anchored at the start only
		{"w1@host", "host", "pcre", false},
		{"w1@host", "(", "pcre", false},
		{"w1@host", "[", "glob", false},
	} {
		got, _ := control.Match(tc.node, tc.pattern, tc.matcher)
		if got != tc.want {
			t.Errorf("Match(%q, %q, %q) = %v, want %v", tc.node, tc.pattern, tc.matcher, got, tc.want)
		}
	}
	if _, err := control.Match("x", "x", "regex"); err == nil {
		t.Error("unknown matcher: no error")
	}
}

// requestInfo is Celery's Request.info() as a client reads it.
type requestInfo struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args"`
	Kwargs       json.RawMessage `json:"kwargs"`
	Type         string          `json:"type"`
	Hostname     string          `json:"hostname"`
	TimeStart    *float64        `json:"time_start"`
	Acknowledged bool            `json:"acknowledged"`
	DeliveryInfo struct {
		RoutingKey string `json:"routing_key"`
	} `json:"delivery_info"`
	WorkerPID *int `json:"worker_pid"`
}

func TestInspectCommands(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	n := startNode(t, bus, nodeConfig{hostname: "i@host", concurrency: 1})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	ctx := context.Background()

	running, err := n.app.SendTask(ctx, "t.block", []any{"first"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to run", func() bool { return len(n.w.Active()) == 1 })
	waiting, _ := n.app.SendTask(ctx, "t.add", []any{1, 2}, nil)
	eventually(t, "a reserved task", func() bool { return len(n.w.Reserved()) == 1 })
	later, _ := n.app.SendTask(ctx, "t.add", []any{3, 4}, nil, engine.Countdown(time.Hour))
	eventually(t, "a scheduled task", func() bool { return len(n.w.Scheduled()) == 1 })

	var active []requestInfo
	decode(t, call(t, c, "active", nil)["i@host"], &active)
	if len(active) != 1 || active[0].ID != running.ID || active[0].Name != "t.block" || active[0].Type != "t.block" ||
		string(active[0].Args) != `["first"]` || active[0].Hostname != "i@host" || active[0].WorkerPID == nil ||
		!active[0].Acknowledged || active[0].DeliveryInfo.RoutingKey != "celery" {
		t.Errorf("active: %+v", active)
	}
	decode(t, call(t, c, "active", map[string]any{"safe": true})["i@host"], &active)
	if len(active) != 1 || string(active[0].Args) != `"('first',)"` {
		t.Errorf("active safe: args %s", active[0].Args)
	}

	var reserved []requestInfo
	decode(t, call(t, c, "reserved", nil)["i@host"], &reserved)
	if len(reserved) != 1 || reserved[0].ID != waiting.ID || string(reserved[0].Args) != `[1,2]` || string(reserved[0].Kwargs) != `{}` || reserved[0].WorkerPID != nil {
		t.Errorf("reserved: %+v", reserved)
	}

	var scheduled []struct {
		ETA      string      `json:"eta"`
		Priority int         `json:"priority"`
		Request  requestInfo `json:"request"`
	}
	decode(t, call(t, c, "scheduled", nil)["i@host"], &scheduled)
	// Priority 6 whatever the message's: Celery's ETA timer entry's.
	if len(scheduled) != 1 || scheduled[0].Request.ID != later.ID || !strings.HasSuffix(scheduled[0].ETA, "+00:00") ||
		string(scheduled[0].Request.Args) != `[3,4]` || scheduled[0].Priority != 6 {
		t.Errorf("scheduled: %+v", scheduled)
	}

	var query map[string][2]json.RawMessage
	decode(t, call(t, c, "query_task", map[string]any{"ids": []string{running.ID, later.ID, "nope"}})["i@host"], &query)
	// The task waiting for its ETA is not reserved yet (Celery 5.2.6 lists
	// it only in scheduled).
	if len(query) != 1 || string(query[running.ID][0]) != `"active"` {
		t.Errorf("query_task: %s", call(t, c, "query_task", map[string]any{"ids": running.ID})["i@host"])
	}

	var names []string
	decode(t, call(t, c, "registered", nil)["i@host"], &names)
	if !slices.Equal(names, []string{"t.add", "t.block"}) {
		t.Errorf("registered: %v", names)
	}
	decode(t, call(t, c, "dump_tasks", map[string]any{"builtins": true})["i@host"], &names)
	if !slices.Contains(names, "celery.chord_unlock") && !slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, "celery.") }) {
		t.Errorf("registered builtins: %v", names)
	}

	var queues []struct {
		Name     string `json:"name"`
		Exchange struct {
			Name, Type string
		} `json:"exchange"`
		RoutingKey string `json:"routing_key"`
		Durable    bool   `json:"durable"`
	}
	decode(t, call(t, c, "active_queues", nil)["i@host"], &queues)
	if len(queues) != 1 || queues[0].Name != "celery" || queues[0].Exchange.Type != "direct" || !queues[0].Durable {
		t.Errorf("active_queues: %+v", queues)
	}

	var conf map[string]any
	decode(t, call(t, c, "conf", nil)["i@host"], &conf)
	if conf["task_default_queue"] != "celery" || conf["worker_hostname"] != "i@host" {
		t.Errorf("conf: %v", conf)
	}

	var clock map[string]int64
	decode(t, call(t, c, "clock", nil)["i@host"], &clock)
	if clock["clock"] <= 0 {
		t.Errorf("clock: %v", clock)
	}

	var report map[string]string
	decode(t, call(t, c, "report", nil)["i@host"], &report)
	if !strings.Contains(report["ok"], "celerity") {
		t.Errorf("report: %v", report)
	}

	n.release()
	if _, err := waiting.Get(ctx); err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Total map[string]int64 `json:"total"`
		PID   int              `json:"pid"`
		Clock string           `json:"clock"`
		Pool  struct {
			MaxConcurrency int   `json:"max-concurrency"`
			Processes      []int `json:"processes"`
		} `json:"pool"`
		Broker struct {
			Transport string `json:"transport"`
		} `json:"broker"`
		PrefetchCount int            `json:"prefetch_count"`
		Rusage        map[string]any `json:"rusage"`
	}
	decode(t, call(t, c, "stats", nil)["i@host"], &stats)
	if stats.Total["t.block"] != 1 || stats.Total["t.add"] != 1 || stats.PID != os.Getpid() || stats.Clock == "" ||
		stats.Pool.MaxConcurrency != 1 || stats.PrefetchCount != 4 || stats.Broker.Transport != "memory" || stats.Rusage["utime"] == nil {
		t.Errorf("stats: %+v", stats)
	}
}

// TestAsyncResultRevokeReachesOtherProcesses: with a Revoker (a control
// client), AsyncResult.Revoke in a producer that runs no worker revokes
// the task in another app's worker, as Celery's AsyncResult.revoke
// broadcasts; without one the worker ran it.
func TestAsyncResultRevokeReachesOtherProcesses(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	broker, backend := memory.NewBroker(), memory.NewBackend()
	n := startNode(t, bus, nodeConfig{hostname: "rv@host", cfg: engine.Config{Broker: broker, Backend: backend}})
	producer, err := engine.New(engine.Config{Broker: broker, Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	producer.SetRevoker(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := producer.SendTask(ctx, "t.add", []any{1, 1}, nil, engine.Countdown(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to be held", func() bool { return len(n.w.Scheduled()) == 1 })
	res.Revoke(false)
	meta, err := res.Wait(ctx)
	if err != nil || meta.StateName != "REVOKED" {
		t.Fatalf("revoked from the producer: %+v, %v; want REVOKED", meta, err)
	}
}

func TestRevokeQueuedAndTerminateRunning(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	n := startNode(t, bus, nodeConfig{hostname: "r@host"})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	ctx := context.Background()

	// A task waiting for its ETA is revoked through the broadcast (no
	// reply, as Celery's app.control.revoke) and discarded when due.
	held, _ := n.app.SendTask(ctx, "t.add", []any{1, 1}, nil, engine.Countdown(300*time.Millisecond))
	eventually(t, "the task to be held", func() bool { return len(n.w.Scheduled()) == 1 })
	if err := c.Revoke(ctx, false, held.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revocation", func() bool { return slices.Contains(n.w.Revoked(), held.ID) })
	meta, err := held.Wait(ctx)
	if err != nil || meta.StateName != "REVOKED" {
		t.Fatalf("revoked task: %+v, %v", meta, err)
	}
	var revoked []string
	decode(t, call(t, c, "revoked", nil)["r@host"], &revoked)
	if !slices.Contains(revoked, held.ID) {
		t.Errorf("revoked: %v", revoked)
	}

	// terminate cancels a running task's context.
	running, _ := n.app.SendTask(ctx, "t.block", []any{"x"}, nil)
	eventually(t, "the task to run", func() bool { return len(n.w.Active()) == 1 })
	var reply map[string]string
	decode(t, call(t, c, "revoke", map[string]any{"task_id": []string{running.ID}, "terminate": true, "signal": "SIGKILL"})["r@host"], &reply)
	if reply["ok"] != "terminate: "+running.ID {
		t.Errorf("revoke terminate: %v", reply)
	}
	meta, err = running.Wait(ctx)
	if err != nil || meta.StateName != "REVOKED" || !strings.Contains(string(meta.Result), `["terminated"]`) {
		t.Errorf("terminated task: %+v, %v; want REVOKED [terminated] as Celery records it", meta, err)
	}
	decode(t, call(t, c, "terminate", map[string]any{"task_id": "unknown-id", "signal": "SIGTERM"})["r@host"], &reply)
	if reply["ok"] != "terminate: tasks unknown" {
		t.Errorf("terminate unknown: %v", reply)
	}
	decode(t, call(t, c, "revoke", map[string]any{"task_id": "abc"})["r@host"], &reply)
	if reply["ok"] != "tasks abc flagged as revoked" {
		t.Errorf("revoke: %v", reply)
	}
}

func TestControlCommands(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	sw := &fakeSwitch{}
	n := startNode(t, bus, nodeConfig{hostname: "c@host", opts: control.ServerOptions{Events: sw}})
	solo := startNode(t, bus, nodeConfig{hostname: "solo@host", pool: "solo"})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()

	for _, tc := range []struct {
		method string
		args   map[string]any
		dest   string
		want   string
	}{
		{"rate_limit", map[string]any{"task_name": "t.add", "rate_limit": "10/s"}, "c@host", `{"ok":"new rate limit set successfully"}`},
		{"rate_limit", map[string]any{"task_name": "t.add", "rate_limit": "0"}, "c@host", `{"ok":"rate limit disabled successfully"}`},
		{"rate_limit", map[string]any{"task_name": "nope", "rate_limit": "1/s"}, "c@host", `{"error":"unknown task"}`},
		{"rate_limit", map[string]any{"task_name": "t.add", "rate_limit": "fast"}, "c@host", `Invalid rate limit string`},
		{"time_limit", map[string]any{"task_name": "t.add", "soft": 1.5, "hard": 3}, "c@host", `{"ok":"time limits set successfully"}`},
		{"time_limit", map[string]any{"task_name": "nope", "soft": 1}, "c@host", `{"error":"unknown task"}`},
		{"pool_grow", map[string]any{"n": 3}, "c@host", `{"ok":"pool will grow"}`},
		{"pool_shrink", nil, "c@host", `{"ok":"pool will shrink"}`},
		{"pool_shrink", map[string]any{"n": 100}, "c@host", `cannot shrink`},
		{"pool_grow", nil, "solo@host", `cannot be resized`},
		{"autoscale", map[string]any{"max": 6, "min": 2}, "c@host", `{"error":"ValueError('Autoscale not enabled')"}`},
		{"enable_events", nil, "c@host", `{"ok":"task events enabled"}`},
		{"enable_events", nil, "c@host", `{"ok":"task events already enabled"}`},
		{"disable_events", nil, "c@host", `{"ok":"task events disabled"}`},
		{"disable_events", nil, "c@host", `{"ok":"task events already disabled"}`},
		{"heartbeat", nil, "c@host", `null`},
		{"enable_events", nil, "solo@host", `no event dispatcher`},
		{"add_consumer", map[string]any{"queue": "q2", "exchange": nil, "exchange_type": nil, "routing_key": nil}, "c@host", `{"ok":"add consumer q2"}`},
		{"active_queues", nil, "c@host", `"name":"q2"`},
		{"add_consumer", map[string]any{"queue": "q3", "exchange": "elsewhere"}, "c@host", `exchange \"elsewhere\" is not supported`},
		{"add_consumer", map[string]any{"queue": "q3", "exchange_type": "topic"}, "c@host", `exchange_type \"topic\" is not supported`},
		{"add_consumer", map[string]any{}, "c@host", `missing queue`},
		{"cancel_consumer", map[string]any{"queue": "q2"}, "c@host", `{"ok":"no longer consuming from q2"}`},
		{"cancel_consumer", map[string]any{"queue": "never-consumed"}, "c@host", `{"ok":"no longer consuming from never-consumed"}`},
		{"no_such_command", nil, "c@host", `unknown command`},
		{"ping", map[string]any{"unexpected": []int{1}}, "c@host", `{"ok":"pong"}`},
		{"active", map[string]any{"safe": "not a bool"}, "c@host", `bad message`},
	} {
		got := string(call(t, c, tc.method, tc.args, tc.dest)[tc.dest])
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s %v on %s: %s, want %s", tc.method, tc.args, tc.dest, got, tc.want)
		}
	}
	if hard, soft, _ := n.app.TimeLimits("t.add"); hard != 3*time.Second || soft != 1500*time.Millisecond {
		t.Errorf("time limits: %v %v", hard, soft)
	}
	if qs := n.w.Queues(); !slices.Equal(qs, []string{"celery"}) {
		t.Errorf("queues after add_consumer q2 and cancel_consumer q2: %v", qs)
	}
	// 2, grown by 3, shrunk by 1; the refused autoscale left it.
	if n.w.PoolSize() != 4 || solo.w.PoolSize() != 1 {
		t.Errorf("pool sizes: %d, %d", n.w.PoolSize(), solo.w.PoolSize())
	}
	if sw.beats.Load() != 1 {
		t.Errorf("heartbeats: %d", sw.beats.Load())
	}
}

type fakeSwitch struct {
	on    atomic.Bool
	beats atomic.Int64
}

func (f *fakeSwitch) EnableTaskEvents() bool  { return !f.on.Swap(true) }
func (f *fakeSwitch) DisableTaskEvents() bool { return f.on.Swap(false) }
func (f *fakeSwitch) SendHeartbeat()          { f.beats.Add(1) }

func TestShutdownStopsTheWorkerWithoutReply(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	n := startNode(t, bus, nodeConfig{hostname: "s@host"})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	replies, err := c.Call(context.Background(), control.Call{Method: "shutdown", Timeout: 300 * time.Millisecond})
	if err != nil || len(replies) != 0 {
		t.Fatalf("shutdown replies: %v, %v", replies, err)
	}
	select {
	case err := <-n.runErr:
		if err != nil {
			t.Fatal(err)
		}
		n.runErr <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	control.Register("test_global_echo", control.KindInspect, func(_ context.Context, r *control.Request) (any, error) {
		var a struct {
			Word string `json:"word"`
		}
		if err := r.Decode(&a); err != nil {
			return nil, err
		}
		return map[string]string{"echo": a.Word, "node": r.Server.Hostname()}, nil
	})
	n := startNode(t, bus, nodeConfig{hostname: "u@host"})
	n.srv.Handle("local_fail", control.KindControl, func(context.Context, *control.Request) (any, error) {
		return nil, errors.New("it broke")
	})
	n.srv.Handle("local_panic", control.KindControl, func(context.Context, *control.Request) (any, error) {
		panic("boom")
	})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	if got := string(call(t, c, "test_global_echo", map[string]any{"word": "hi"})["u@host"]); got != `{"echo":"hi","node":"u@host"}` {
		t.Errorf("global command: %s", got)
	}
	replies, _ := c.Call(context.Background(), control.Call{Method: "local_fail", Timeout: time.Second})
	if len(replies) != 1 || replies[0].Error() != "it broke" {
		t.Errorf("failing command: %+v", replies)
	}
	if got := string(call(t, c, "local_panic", nil)["u@host"]); !strings.Contains(got, "panicked: boom") {
		t.Errorf("panicking command: %s", got)
	}
	kinds := n.srv.Commands()
	if kinds["local_fail"] != control.KindControl || kinds["test_global_echo"] != control.KindInspect || kinds["ping"] != control.KindInspect {
		t.Errorf("commands: %v", kinds)
	}
}

func TestHelloStateDBAndMingle(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	db := filepath.Join(t.TempDir(), "worker.state")
	a := startNode(t, bus, nodeConfig{hostname: "a@host", opts: control.ServerOptions{StateDB: db}})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()

	// hello from another node: its revoked ids (Celery's LimitedSet data,
	// float timestamps) are merged and ours come back as floats.
	now := float64(time.Now().Unix())
	var hello struct {
		Revoked map[string]json.RawMessage `json:"revoked"`
		Clock   int64                      `json:"clock"`
	}
	decode(t, call(t, c, "hello", map[string]any{"from_node": "py@host", "revoked": map[string]any{"r1": now, "old": now - 4*3600}})["a@host"], &hello)
	if _, ok := hello.Revoked["r1"]; !ok || hello.Clock <= 0 {
		t.Fatalf("hello reply: %+v", hello)
	}
	if _, ok := hello.Revoked["old"]; ok {
		t.Error("an id revoked more than 3 hours ago was kept")
	}
	if ts := string(hello.Revoked["r1"]); !strings.Contains(ts, ".") {
		t.Errorf("timestamp %s is not a float for Python", ts)
	}
	if got := string(call(t, c, "hello", map[string]any{"from_node": "a@host"})["a@host"]); got != "null" {
		t.Errorf("hello from itself: %s", got)
	}

	// The state file keeps revocations across restarts.
	a.app.Revoke(false, "r2")
	if err := a.srv.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(db)
	if err != nil || !strings.Contains(string(data), `"r2"`) {
		t.Fatalf("state file: %s, %v", data, err)
	}
	b := startNode(t, bus, nodeConfig{hostname: "b@host", opts: control.ServerOptions{StateDB: db}})
	if got := b.w.Revoked(); !slices.Contains(got, "r1") || !slices.Contains(got, "r2") {
		t.Errorf("revoked after restart: %v", got)
	}

	// Mingle: a new worker learns b's revoked ids.
	b.app.Revoke(false, "r3")
	m := startNode(t, bus, nodeConfig{hostname: "m@host", opts: control.ServerOptions{Mingle: true}})
	eventually(t, "mingle", func() bool { return slices.Contains(m.w.Revoked(), "r3") })
}

func TestAutoscaleUsesTheWorkersAutoscaler(t *testing.T) {
	t.Parallel()
	bus := control.NewMemoryBus()
	defer bus.Close()
	var got [2]int
	startNode(t, bus, nodeConfig{hostname: "as@host", opts: control.ServerOptions{
		Autoscale: func(hi, lo int) (int, int, error) { got = [2]int{hi, lo}; return hi, max(lo, 1), nil },
	}})
	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	if r := string(call(t, c, "autoscale", map[string]any{"max": 8, "min": 0})["as@host"]); r != `{"ok":"autoscale now max=8 min=1"}` || got != [2]int{8, 0} {
		t.Errorf("autoscale: %s, hook got %v", r, got)
	}
	if r := string(call(t, c, "pool_grow", nil)["as@host"]); !strings.Contains(r, "not supported with autoscale") {
		t.Errorf("pool_grow while autoscaling: %s", r)
	}
}
