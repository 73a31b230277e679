package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
)

// TestWorkerAndCallOverRedis runs `celerity worker` and `celerity call
// --wait` against the real Redis, isolated by a key prefix, stops the
// worker by its context, and purges what calls sent after it.
func TestWorkerAndCallOverRedis(t *testing.T) {
	t.Parallel()
	url, _ := prefixedRedisURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wout, werr interoptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"worker", "--broker", url, "--backend", url, "-c", "2", "-Q", "clitest"},
			Options{Stdout: &wout, Stderr: &werr})
	}()
	var out, errb bytes.Buffer
	callCtx, callCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer callCancel()
	code := Run(callCtx, []string{"call", "--broker", url, "--backend", url, "--queue", "clitest",
		"--args", `[1, "two", {"three": 3}]`, "--wait", "15s", "celerity.echo"}, Options{Stdout: &out, Stderr: &errb})
	if code != 0 {
		t.Fatalf("call exit %d: %s\nworker: %s", code, errb.String(), werr.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	brokertest.CleanupRedisKeys(t, brokertest.RedisURL(t), "celery-task-meta-"+lines[0])
	if len(lines) != 2 || !strings.Contains(lines[1], `"state":"SUCCESS"`) ||
		!strings.Contains(lines[1], `"result":[1,"two",{"three":3}]`) {
		t.Fatalf("call output %q", out.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("worker exit %d: %s", code, werr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop on cancel")
	}
	if !strings.Contains(werr.String(), "ready; tasks: celerity.echo") {
		t.Fatalf("worker banner missing: %s", werr.String())
	}
	// With the worker gone, three calls wait in the queue for purge.
	for range 3 {
		out.Reset()
		if code := Run(context.Background(), []string{"call", "--broker", url, "--queue", "clitest", "celerity.noop"},
			Options{Stdout: &out, Stderr: &errb}); code != 0 {
			t.Fatalf("call exit %d: %s", code, errb.String())
		}
	}
	for _, want := range []string{"purged 3 message(s)", "purged 0 message(s)"} {
		out.Reset()
		code = Run(context.Background(), []string{"purge", "--broker", url, "-Q", "clitest,other"}, Options{Stdout: &out, Stderr: &errb})
		if code != 0 || !strings.Contains(out.String(), want) {
			t.Fatalf("purge exit %d: %q %s; want %q", code, out.String(), errb.String(), want)
		}
	}
}

// TestCelerySyntaxAndExitCodesOverRedis: as with Celery's CLI, flags may
// follow the task name of `call` and the id of `result`, and inspect,
// control and status exit with 69 (EX_UNAVAILABLE) when no worker replies.
func TestCelerySyntaxAndExitCodesOverRedis(t *testing.T) {
	t.Parallel()
	url, _ := prefixedRedisURL(t)

	code, out, errs := run(t, Options{}, "call", "celerity.noop", "--broker", url, "--backend", url,
		"--queue", "syntaxq", "--args", "[1]")
	if code != 0 {
		t.Fatalf("call TASK --flags: exit %d: %s", code, errs)
	}
	id := strings.TrimSpace(out)
	code, out, errs = run(t, Options{}, "result", id, "--backend", url, "--broker", url)
	if code != 0 || !strings.Contains(out, `"state":"PENDING"`) {
		t.Fatalf("result ID --flags: exit %d: %s%s", code, out, errs)
	}
	code, out, errs = run(t, Options{}, "purge", "--broker", url, "-Q", "syntaxq")
	if code != 0 || !strings.Contains(out, "purged 1 message(s)") {
		t.Fatalf("purge: exit %d: %s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"inspect", "ping"}, {"status"}, {"control", "rate_limit", "celerity.noop", "1/s"},
	} {
		args = append(args, "--broker", url, "-d", "nobody@nowhere", "-t", "0.3")
		code, _, errs := run(t, Options{}, args...)
		if code != 69 || !strings.Contains(errs, "no nodes replied") {
			t.Errorf("%v: exit %d (want 69): %s", args, code, errs)
		}
	}
}

// prefixedRedisURL returns the test Redis's URL with a key prefix of the
// test's own (kombu's global_keyprefix), and the prefix; the prefix's keys
// are deleted when the test ends.
func prefixedRedisURL(t *testing.T) (url, prefix string) {
	t.Helper()
	url, prefix = brokertest.RedisURL(t), brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, url, prefix)
	return url + "?global_keyprefix=" + prefix, prefix
}
