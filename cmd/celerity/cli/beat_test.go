package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/beat"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/transport/redis"
)

// writeSchedule writes a beat schedule file into a temporary directory.
func writeSchedule(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runs collects the task ids a Setup-registered task ran with.
type runs struct {
	mu  sync.Mutex
	ids []string
}

func (r *runs) setup(task string) func(app *engine.App) error {
	return func(app *engine.App) error {
		engine.RegisterRaw(app, task, func(_ context.Context, t *engine.Task) error {
			r.mu.Lock()
			r.ids = append(r.ids, string(t.Message().ID))
			r.mu.Unlock()
			return nil
		})
		return nil
	}
}

func (r *runs) wait(t *testing.T, n int, logs func() string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		ids := append([]string(nil), r.ids...)
		r.mu.Unlock()
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs, want %d\n%s", len(ids), n, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBeatUsageAndErrors(t *testing.T) {
	t.Parallel()
	good := writeSchedule(t, "s.json", `{"tick": {"task": "celerity.noop", "schedule": 1}}`)
	bad := writeSchedule(t, "s.yaml", "tick:\n  task: celerity.noop\n  schedule: {crontab: {minute: '61'}}\n")
	corrupt := writeSchedule(t, "state.json", `{"version": 7}`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"beat"}, 2, "--schedule FILE is required"},
		{[]string{"beat", "--schedule", good, "extra"}, 2, "usage: celerity beat"},
		{[]string{"beat", "--schedule", filepath.Join(t.TempDir(), "none.json")}, 1, "no such file"},
		{[]string{"beat", "--schedule", bad}, 1, `invalid crontab: minute "61"`},
		{[]string{"beat", "--schedule", good, "--timezone", "Mars/Olympus"}, 1, "Mars/Olympus"},
		{[]string{"beat", "--schedule", good, "--state", corrupt}, 1, "delete the file to start afresh"},
		{[]string{"beat", "--schedule", good, "--lease-ttl", "-1s"}, 1, "LeaseTTL -1s is negative"},
		{[]string{"worker", "-B"}, 1, "-B needs --beat-schedule FILE"},
		{[]string{"worker", "-B", "--beat-schedule", bad}, 1, "beat: "},
	} {
		code, _, stderr := run(t, Options{}, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr, tc.want)
		}
	}
	code, _, stderr := run(t, Options{}, "worker", "--help")
	for _, flag := range []string{"-B", "-beat-schedule", "-beat-state", "-beat-lock-key"} {
		if code != 0 || !strings.Contains(stderr, flag) {
			t.Errorf("worker --help lacks %s: %q", flag, stderr)
		}
	}
	code, _, stderr = run(t, Options{}, "beat", "--help")
	for _, flag := range []string{"-schedule", "-state", "-timezone", "-lock-key", "-lease-ttl", "-max-interval", "-broker"} {
		if code != 0 || !strings.Contains(stderr, flag) {
			t.Errorf("beat --help lacks %s: %q", flag, stderr)
		}
	}
}

// TestWorkerWithEmbeddedBeatOnMemory: worker -B on the memory transport
// runs the tasks its own beat sends, and saves the state when it stops.
func TestWorkerWithEmbeddedBeatOnMemory(t *testing.T) {
	t.Parallel()
	schedule := writeSchedule(t, "s.yaml", "tick:\n  task: cli.beat.tick\n  schedule: 0.05\n  args: [1]\n")
	state := filepath.Join(t.TempDir(), "state.json")
	r := &runs{}
	var stderr interoptest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"worker", "-c", "1", "-B", "--beat-schedule", schedule, "--beat-state", state},
			Options{Stdout: &stderr, Stderr: &stderr, Setup: r.setup("cli.beat.tick")})
	}()
	r.wait(t, 3, stderr.String)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("worker -B exit %d: %s", code, stderr.String())
	}
	st, err := beat.ReadStateFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Entries["tick"].TotalRunCount; n < 3 {
		t.Fatalf("state file run count %d, want >= 3", n)
	}
	if !strings.Contains(stderr.String(), "celerity beat (embedded): 1 entries from "+schedule+", lease in-process (run a single beat)") {
		t.Errorf("banner missing: %s", stderr.String())
	}
}

// TestBeatAndWorkerBOverRedis runs `celerity beat` and `celerity worker -B`
// against the same Redis: two beat instances, one lease. The worker runs
// each run once, and both release the lease when stopped.
func TestBeatAndWorkerBOverRedis(t *testing.T) {
	t.Parallel()
	url, prefix := prefixedRedisURL(t)
	schedule := writeSchedule(t, "s.json",
		`{"tick": {"task": "cli.beat.redis", "schedule": 0.2, "kwargs": {"n": 1}, "options": {"queue": "beatq"}}}`)
	dir := t.TempDir()
	r := &runs{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var beatErr, workerErr interoptest.SyncBuffer
	beatDone, workerDone := make(chan int, 1), make(chan int, 1)
	go func() {
		beatDone <- Run(ctx, []string{"beat", "--broker", url, "--schedule", schedule,
			"--state", filepath.Join(dir, "beat.json"), "--lease-ttl", "1s"},
			Options{Stdout: &beatErr, Stderr: &beatErr, Setup: r.setup("cli.beat.redis")})
	}()
	go func() {
		workerDone <- Run(ctx, []string{"worker", "--broker", url, "-Q", "beatq", "-c", "2", "-B",
			"--beat-schedule", schedule, "--beat-state", filepath.Join(dir, "worker.json"), "--beat-lease-ttl", "1s"},
			Options{Stdout: &workerErr, Stderr: &workerErr, Setup: r.setup("cli.beat.redis")})
	}()
	logs := func() string { return "beat: " + beatErr.String() + "\nworker: " + workerErr.String() }
	ids := r.wait(t, 5, logs)
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("run %s ran twice: %v", id, ids)
		}
		seen[id] = true
	}
	cancel()
	for name, ch := range map[string]chan int{"beat": beatDone, "worker": workerDone} {
		select {
		case code := <-ch:
			if code != 0 {
				t.Fatalf("%s exit %d\n%s", name, code, logs())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not stop\n%s", name, logs())
		}
	}
	if !strings.Contains(beatErr.String(), "lease redis key "+prefix+"celerity.beat") {
		t.Errorf("beat banner: %s", beatErr.String())
	}
	// The lease was released, the records stay.
	app, err := (&appFlags{broker: url, loglevel: "error"}).newApp(Options{Stderr: &beatErr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	l := beat.NewRedisLocker(app.Broker().(*redis.Broker).Client(), prefix+"celerity.beat")
	held, err := l.Acquire(context.Background(), "test", time.Second)
	if err != nil || !held {
		t.Fatalf("lease still held after both stopped: %v %v", held, err)
	}
	recs, err := l.Load(context.Background())
	if err != nil || recs["tick"].TotalRunCount < 5 {
		t.Fatalf("records %+v %v", recs, err)
	}
}

// TestBeatLeaseOnTheBackendsRedis: with a broker that is not Redis, the
// lease goes to the result backend's Redis.
func TestBeatLeaseOnTheBackendsRedis(t *testing.T) {
	t.Parallel()
	url := brokertest.RedisURL(t)
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, url, prefix)
	schedule := writeSchedule(t, "s.json", `{"tick": {"task": "celerity.noop", "schedule": 60}}`)
	var out interoptest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"beat", "--broker", "memory://", "--backend", url + "?global_keyprefix=" + prefix,
			"--schedule", schedule, "--state", ""}, Options{Stdout: &out, Stderr: &out})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || !strings.Contains(out.String(), "lease redis key "+prefix+"celerity.beat,") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
}
