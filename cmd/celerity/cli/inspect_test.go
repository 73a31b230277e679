package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
)

func TestCompileRemoteArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verb string
		kind control.Kind
		args []string
		want string // JSON, or "error"
	}{
		{"revoke", control.KindControl, []string{"a", "b"}, `{"task_id":["a","b"]}`},
		{"revoke", control.KindControl, nil, `{"task_id":[]}`},
		{"terminate", control.KindControl, []string{"SIGKILL", "a"}, `{"signal":"SIGKILL","task_id":["a"]}`},
		{"rate_limit", control.KindControl, []string{"t.add", "5/s"}, `{"rate_limit":"5/s","task_name":"t.add"}`},
		{"rate_limit", control.KindControl, []string{"t.add", "5/s", "x"}, "error"},
		{"time_limit", control.KindControl, []string{"t.add", "1.5", "3"}, `{"hard":3,"soft":1.5,"task_name":"t.add"}`},
		{"time_limit", control.KindControl, []string{"t.add", "soon"}, "error"},
		{"pool_grow", control.KindControl, []string{"2"}, `{"n":2}`},
		{"pool_grow", control.KindControl, []string{"two"}, "error"},
		{"autoscale", control.KindControl, []string{"8", "2"}, `{"max":8,"min":2}`},
		{"conf", control.KindInspect, []string{"true"}, `{"with_defaults":true}`},
		{"conf", control.KindInspect, []string{"maybe"}, "error"},
		{"query_task", control.KindInspect, []string{"i1", "i2"}, `{"ids":["i1","i2"]}`},
		{"registered", control.KindInspect, []string{"rate_limit"}, `{"taskinfoitems":["rate_limit"]}`},
		{"ping", control.KindInspect, []string{"x"}, "error"},
	} {
		v, ok := findVerb(tc.verb, tc.kind)
		if !ok {
			t.Fatalf("verb %s unknown", tc.verb)
		}
		got, err := compileArgs(v, tc.args)
		if tc.want == "error" {
			if err == nil {
				t.Errorf("%s %v: no error", tc.verb, tc.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", tc.verb, tc.args, err)
			continue
		}
		b, _ := json.Marshal(sortedKeys(toAny(got)))
		if string(b) != tc.want {
			t.Errorf("%s %v = %s, want %s", tc.verb, tc.args, b, tc.want)
		}
	}
}

func toAny(m map[string]any) any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestPrettyRepliesAsCelery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply string
		want  string
	}{
		{`{"ok": "pong"}`, "->  w@h: OK\n        pong\n"},
		{`[]`, "->  w@h: OK\n    - empty -\n"},
		{`["a.b", "c.d"]`, "->  w@h: OK\n    * a.b\n    * c.d\n"},
		{`{"error": "unknown task"}`, "->  w@h: ERROR\n        unknown task\n"},
		{`{"b": 1, "a": {"y": 2, "x": [1]}}`, "->  w@h: OK\n    {\n        \"a\": {\n            \"x\": [\n                1\n            ],\n            \"y\": 2\n        },\n        \"b\": 1\n    }\n"},
		{`null`, "->  w@h: OK\n    None\n"},
	} {
		var b bytes.Buffer
		sayReply(&b, control.Reply{Node: "w@h", Value: json.RawMessage(tc.reply)}, true)
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.reply, b.String(), tc.want)
		}
	}
}

func TestParseInterspersedFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d := fs.String("d", "", "")
	j := fs.Bool("j", false, "")
	pos, err := parseInterspersed(fs, []string{"revoke", "-d", "w1@h", "id1", "-j", "id2", "--", "-id3"})
	if err != nil || strings.Join(pos, " ") != "revoke id1 id2 -id3" || *d != "w1@h" || !*j {
		t.Errorf("parsed %v, d=%q j=%v, err %v", pos, *d, *j, err)
	}
}

func TestRemoteCommandUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect"}, 2, "usage: celerity inspect"},
		{[]string{"inspect", "--help"}, 0, "active_queues"},
		{[]string{"control", "--help"}, 0, "rate_limit"},
		{[]string{"inspect", "custom_cmd", "extra"}, 2, "give its arguments with --args"},
		{[]string{"control", "rate_limit", "a", "b", "c"}, 2, "takes arguments"},
		{[]string{"inspect", "--args", "{bad", "x"}, 1, "--args"},
		{[]string{"inspect", "ping"}, 1, "need a Redis or RabbitMQ broker"},
		{[]string{"status"}, 1, "need a Redis or RabbitMQ broker"},
		{[]string{"events", "--dump"}, 1, "need a Redis or RabbitMQ broker"},
		{[]string{"status", "extra"}, 2, "usage: celerity status"},
	} {
		code, _, stderr := run(t, Options{}, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr, tc.want)
		}
	}
}

// cliAMQPURL returns the test RabbitMQ in a vhost of the test's own,
// deleted when the test ends.
func cliAMQPURL(t *testing.T) string {
	t.Helper()
	base := brokertest.AMQPURL(t)
	if os.Getenv("CELERITY_TEST_AMQP_URL") != "" {
		return base
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return base
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "celerity-cli-remote-" + hex.EncodeToString(b)
	if out, err := exec.Command("rabbitmqctl", "add_vhost", name).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl add_vhost: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("rabbitmqctl", "delete_vhost", name).Run() })
	if out, err := exec.Command("rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl set_permissions: %v: %s", err, out)
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// cliRedisURL is the test Redis in DB 9 (the remote-control tests' DB)
// with a key prefix of the test's own, removed when it ends.
func cliRedisURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(brokertest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/9"
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, u.String(), prefix)
	return u.String() + "?global_keyprefix=" + prefix
}

// startCLIWorker runs `celerity worker` with args until the test ends;
// setup, if not nil, registers tasks of the test's own (Options.Setup).
func startCLIWorker(t *testing.T, setup func(*engine.App) error, args ...string) *interoptest.SyncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var werr interoptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"worker"}, args...), Options{Stdout: io.Discard, Stderr: &werr, Setup: setup})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("worker exit %d: %s", code, werr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(werr.String(), "ready; tasks:") {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready: %s", werr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &werr
}

// retryRun runs the CLI until it exits 0 (the worker's mailbox may take
// a moment to subscribe) or 20s pass.
func retryRun(t *testing.T, args ...string) (stdout string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, errs := run(t, Options{}, args...)
		if code == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: exit %d: %s%s", args, code, out, errs)
		}
	}
}

// TestInspectControlStatusEventsOverRedis drives a `celerity worker -E`
// with `celerity inspect`, `control`, `status` and `events --dump`.
func TestInspectControlStatusEventsOverRedis(t *testing.T) {
	t.Parallel()
	url := cliRedisURL(t)
	node := "cli-" + strings.TrimSuffix(brokertest.Prefix(t)[3:], "-") + "@test"
	queue := "cliq"
	startCLIWorker(t, nil, "--broker", url, "-n", node, "-Q", queue, "-c", "2", "-E", "--without-mingle")

	out := retryRun(t, "inspect", "ping", "--broker", url, "-d", node, "-t", "5")
	if !strings.Contains(out, "->  "+node+": OK\n        pong") || !strings.Contains(out, "1 node online.") {
		t.Errorf("inspect ping: %q", out)
	}
	out = retryRun(t, "status", "--broker", url, "-d", node, "-t", "5")
	if !strings.Contains(out, "->  "+node+": OK") || !strings.Contains(out, "1 node online.") {
		t.Errorf("status: %q", out)
	}
	out = retryRun(t, "inspect", "registered", "--broker", url, "-d", node, "-t", "5", "-j")
	var reg map[string][]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil || !strings.Contains(strings.Join(reg[node], ","), "celerity.echo") {
		t.Errorf("inspect registered -j: %q, %v", out, err)
	}
	out = retryRun(t, "control", "rate_limit", "celerity.echo", "10/s", "--broker", url, "-d", node, "-t", "5")
	if !strings.Contains(out, "new rate limit set successfully") {
		t.Errorf("control rate_limit: %q", out)
	}
	// A task held for its countdown, revoked from the CLI.
	code, idOut, errs := run(t, Options{}, "call", "--broker", url, "--queue", queue, "--countdown", "1s", "celerity.noop")
	if code != 0 {
		t.Fatalf("call: %s", errs)
	}
	id := strings.TrimSpace(idOut)
	out = retryRun(t, "control", "revoke", id, "--broker", url, "-d", node, "-t", "5", "-j")
	if !strings.Contains(out, "tasks "+id+" flagged as revoked") {
		t.Errorf("control revoke: %q", out)
	}
	out = retryRun(t, "inspect", "revoked", "--broker", url, "-d", node, "-t", "5")
	if !strings.Contains(out, "* "+id) {
		t.Errorf("inspect revoked: %q", out)
	}
	// events --dump for a bounded time sees the worker's heartbeats and,
	// sent while it listens, a task's events.
	var dump bytes.Buffer
	dumped := make(chan int, 1)
	go func() {
		dumped <- Run(context.Background(), []string{"events", "--dump", "--duration", "4s", "--broker", url},
			Options{Stdout: &dump, Stderr: io.Discard})
	}()
	// The dump subscribes after it starts: send tasks until it ends.
	for sending := true; sending; {
		if code, _, errs := run(t, Options{}, "call", "--broker", url, "--queue", queue, "--args", `[1, "x"]`, "celerity.echo"); code != 0 {
			t.Fatalf("call: %s", errs)
		}
		select {
		case code := <-dumped:
			if code != 0 {
				t.Fatalf("events exit %d", code)
			}
			sending = false
		case <-time.After(300 * time.Millisecond):
		}
	}
	if s := dump.String(); !strings.Contains(s, node+" [") || !strings.Contains(s, "] heartbeat: active=") ||
		!strings.Contains(s, "] task succeeded: celerity.echo(") || !strings.Contains(s, "args=(1, 'x')") {
		t.Errorf("events --dump:\n%s", s)
	}
	// The live view, in one bounded frame.
	code, out, errs = run(t, Options{}, "events", "--duration", "4s", "--refresh", "1s", "--broker", url)
	if code != 0 || !strings.Contains(out, node) || !strings.Contains(out, "ONLINE") || !strings.Contains(out, "RECENT FAILURES") {
		t.Errorf("events live view: exit %d: %s%s", code, out, errs)
	}
}

// TestInspectPingSeesPythonWorker: `celerity inspect ping` and `celerity
// status` list a Python Celery worker, on Redis and on RabbitMQ.
func TestInspectPingSeesPythonWorker(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{"redis", "amqp"} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			dir := brokertest.Celery(t)
			var url, backend string
			if broker == "redis" {
				u, err := urlWithDB(brokertest.RedisURL(t), 9)
				if err != nil {
					t.Fatal(err)
				}
				url, backend = u, u
			} else {
				url, backend = cliAMQPURL(t), "rpc://"
			}
			b := make([]byte, 4)
			rand.Read(b)
			node := "pyw-" + hex.EncodeToString(b) + "@cli"
			queue := "clipyq-" + hex.EncodeToString(b)
			if broker == "redis" {
				brokertest.CleanupRedisKeys(t, url, queue+"*", "_kombu.binding."+queue)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, brokertest.Python, "-m", "celery", "-A", "py_app", "worker", "-P", "solo",
				"-n", node, "-Q", queue, "--without-mingle", "--without-gossip")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+url, "CELERY_RESULT_BACKEND="+backend)
			var log interoptest.SyncBuffer
			cmd.Stdout, cmd.Stderr = &log, &log
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			t.Cleanup(func() {
				once.Do(func() { cancel(); cmd.Wait() })
				if t.Failed() {
					t.Logf("python worker:\n%s", log.String())
				}
			})
			out := retryRun(t, "inspect", "ping", "--broker", url, "-d", node, "-t", "2")
			if !strings.Contains(out, "->  "+node+": OK\n        pong") {
				t.Errorf("inspect ping: %q", out)
			}
			out = retryRun(t, "status", "--broker", url, "-d", node, "-t", "2", "-j")
			if !strings.Contains(out, fmt.Sprintf(`{"%s":{"ok":"pong"}}`, node)) {
				t.Errorf("status -j: %q", out)
			}
			out = retryRun(t, "inspect", "registered", "--broker", url, "-d", node, "-t", "2")
			if !strings.Contains(out, "* interop.add") {
				t.Errorf("inspect registered: %q", out)
			}
		})
	}
}

func urlWithDB(raw string, db int) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Path = fmt.Sprintf("/%d", db)
	return u.String(), nil
}

// TestTaskRevokesATaskOfAnotherWorker: a task that revokes another
// (AsyncResult.Revoke) in one `celerity worker` reaches a second worker
// holding that task for its countdown, through the control bus, as a
// Celery task's revoke reaches every worker; the held task ends REVOKED.
func TestTaskRevokesATaskOfAnotherWorker(t *testing.T) {
	t.Parallel()
	url := cliRedisURL(t)
	node := "rv-" + strings.TrimSuffix(brokertest.Prefix(t)[3:], "-")
	startCLIWorker(t, nil, "--broker", url, "--backend", url, "-n", node+"-held@test", "-Q", "heldq", "--without-mingle")
	revoker := func(app *engine.App) error {
		engine.Register1(app, "cli.revoke", func(ctx context.Context, id string) (string, error) {
			app.Result(id).Revoke(false)
			return id, nil
		})
		return nil
	}
	startCLIWorker(t, revoker, "--broker", url, "--backend", url, "-n", node+"-rev@test", "-Q", "revq", "--without-mingle")

	code, out, errs := run(t, Options{}, "call", "celerity.noop", "--broker", url, "--backend", url, "--queue", "heldq", "--countdown", "2s")
	if code != 0 {
		t.Fatalf("call: %s", errs)
	}
	id := strings.TrimSpace(out)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(retryRun(t, "inspect", "scheduled", "--broker", url, "-d", node+"-held@test", "-t", "2"), id); {
		if time.Now().After(deadline) {
			t.Fatal("the countdown task never reached the holding worker")
		}
	}
	code, out, errs = run(t, Options{Setup: revoker}, "call", "cli.revoke", "--broker", url, "--backend", url,
		"--queue", "revq", "--args", `["`+id+`"]`, "--wait", "10s")
	if code != 0 || !strings.Contains(out, `"state":"SUCCESS"`) {
		t.Fatalf("revoking task: exit %d: %s%s", code, out, errs)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, out, _ = run(t, Options{}, "result", id, "--backend", url, "--broker", url)
		if strings.Contains(out, `"state":"REVOKED"`) {
			break
		}
		if time.Now().After(deadline) || strings.Contains(out, `"state":"SUCCESS"`) {
			t.Fatalf("task revoked from a task of another worker: %s, want REVOKED", out)
		}
	}
}
