package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/interoptest"
)

func run(t *testing.T, o Options, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	o.Stdout, o.Stderr = &out, &errb
	code = Main(args, o)
	return code, out.String(), errb.String()
}

func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, Options{}, "--help")
	if code != 0 || !strings.Contains(stderr, "worker") || !strings.Contains(stderr, "demo") {
		t.Fatalf("--help: code %d, %q", code, stderr)
	}
	for _, c := range commands() {
		code, _, stderr := run(t, Options{}, c.name, "--help")
		if code != 0 || !strings.Contains(stderr, "usage: celerity "+c.name) {
			t.Errorf("%s --help: code %d, %q", c.name, code, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: celerity"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"call"}, 2, "usage: celerity call"},
		{[]string{"call", "--args", "{not json", "x"}, 1, "--args"},
		{[]string{"worker", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"call", "--broker", "kafka://x", "t"}, 1, "unsupported scheme"},
		{[]string{"demo", "-c", "0"}, 1, "-c >= 1"},
	} {
		code, _, stderr := run(t, Options{}, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr, tc.want)
		}
	}
}

func TestDemoRunsAndReportsResults(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, Options{}, "demo", "-n", "20000", "-typed", "500", "-c", "2")
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, stderr)
	}
	for _, want := range []string{"no-op tasks:  20000 in", "typed tasks:  500 in", "0 wrong", "succeeded 20500"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "100% 20500/20500") {
		t.Errorf("progress bar did not reach 100%%: %q", stderr)
	}
}

func TestSetupRegistersTasksAndCallWaitsForResult(t *testing.T) {
	t.Parallel()
	// call on the memory broker in one process: the Setup hook is where a
	// program adds its tasks; without a worker the result stays PENDING.
	var setupCalls int
	o := Options{Setup: func(app *engine.App) error {
		setupCalls++
		engine.Register0(app, "mine.task", func(context.Context) (int, error) { return 1, nil })
		return nil
	}}
	code, stdout, stderr := run(t, o, "call", "--args", "[1, 2]", "--wait", "50ms", "mine.task")
	if code != 1 || !strings.Contains(stderr, "timed out") || len(strings.TrimSpace(stdout)) != 36 {
		t.Fatalf("call: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	if setupCalls != 1 {
		t.Fatalf("Setup ran %d times", setupCalls)
	}
	code, stdout, _ = run(t, o, "result", "00000000-0000-0000-0000-000000000000")
	if code != 0 || !strings.Contains(stdout, `"state":"PENDING"`) {
		t.Fatalf("result: code %d %q", code, stdout)
	}
}

// purge takes several queues; a fresh memory broker has nothing in them
// (TestWorkerAndCallOverRedis purges real messages).
func TestPurgeSeveralQueuesOnMemory(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, Options{}, "purge", "-Q", "celery,other")
	if code != 0 || !strings.Contains(stdout, "purged 0 message(s)") {
		t.Fatalf("purge: %d %q %q", code, stdout, stderr)
	}
}

// stubbornArgsEnv makes the test binary run Main with these arguments and
// stubbornSetup (see TestMain).
const stubbornArgsEnv = "CELERITY_CLI_TEST_STUBBORN_ARGS"

// stubbornSetup registers a task that ignores its context and never
// returns, and sends it.
func stubbornSetup(app *engine.App) error {
	engine.RegisterRaw(app, "t.stubborn", func(context.Context, *engine.Task) error {
		fmt.Fprintln(os.Stderr, "stubborn task started")
		select {}
	})
	return app.SendRaw(context.Background(), "t.stubborn", nil, nil)
}

// Ctrl-C twice ends a worker whose task ignores its cancelled context, as
// it ends a Celery worker: the goroutine pool gives up on the task after
// the engine's cold grace, and with the solo pool, whose one goroutine the
// task holds, the process exits after coldExit.
func TestSecondInterruptEndsAWorkerStuckInATask(t *testing.T) {
	for _, c := range []struct {
		pool string
		code int
		says string
	}{
		{"goroutine", 0, "cold shutdown: cancelling running tasks"},
		{"solo", 1, "cold shutdown: tasks still running; exiting"},
	} {
		t.Run(c.pool, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), stubbornArgsEnv+"="+strings.Join([]string{"worker", "--broker", "memory://", "--pool", c.pool}, "\x1f"))
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			var out interoptest.SyncBuffer
			started, read := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(read)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					fmt.Fprintln(&out, sc.Text())
					if sc.Text() == "stubborn task started" {
						close(started)
					}
				}
			}()
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatalf("the task did not start: %s", out.String())
			}
			cmd.Process.Signal(os.Interrupt) // warm
			time.Sleep(200 * time.Millisecond)
			cmd.Process.Signal(os.Interrupt) // cold
			exited := make(chan error, 1)
			// Wait closes the pipe: it must not run before everything the
			// worker wrote has been read (the last line was lost once).
			go func() { <-read; exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if code := cmd.ProcessState.ExitCode(); code != c.code {
					t.Errorf("exit code %d (%v), want %d", code, err, c.code)
				}
			case <-time.After(coldExit + 20*time.Second):
				t.Fatalf("the worker did not exit after a second interrupt: %s", out.String())
			}
			if !strings.Contains(out.String(), c.says) {
				t.Errorf("stderr does not say %q:\n%s", c.says, out.String())
			}
		})
	}
}
