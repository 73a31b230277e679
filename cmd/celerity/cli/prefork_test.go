package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
	"github.com/celerity-go/celerity/pool/prefork"
)

// childArgsEnv carries the worker command line to prefork children, which
// are this test binary started again.
const childArgsEnv = "CELERITY_CLI_TEST_WORKER_ARGS"

// TestMain lets the test binary be a prefork child of a `worker` command
// started by a test: it runs the same command, which serves tasks.
func TestMain(m *testing.M) {
	if prefork.IsChild() {
		os.Exit(Run(context.Background(), strings.Split(os.Getenv(childArgsEnv), "\x1f"), Options{}))
	}
	if args := os.Getenv(stubbornArgsEnv); args != "" {
		os.Exit(Main(strings.Split(args, "\x1f"), Options{Setup: stubbornSetup}))
	}
	os.Exit(m.Run())
}

func TestParseAutoscale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		min, max int
		bad      bool
	}{
		{"10,3", 3, 10, false}, {"4", 1, 4, false}, {"4,0", 1, 4, false},
		{"3,10", 0, 0, true}, {"x,1", 0, 0, true}, {"1,2,3", 0, 0, true}, {"0", 0, 0, true},
	} {
		a, err := parseAutoscale(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %+v", tc.in, a)
			}
			continue
		}
		if err != nil || a.Min != tc.min || a.Max != tc.max {
			t.Errorf("%q: %+v, %v; want min %d max %d", tc.in, a, err, tc.min, tc.max)
		}
	}
}

// TestPreforkWorkerOverRedis runs `celerity worker --pool prefork` (its
// children are this binary) and a `call --wait` against the real Redis.
func TestPreforkWorkerOverRedis(t *testing.T) {
	url, _ := prefixedRedisURL(t)
	args := []string{"worker", "--broker", url, "--backend", url, "--pool", "prefork", "-c", "2",
		"--max-tasks-per-child", "3", "-Q", "prefork"}
	t.Setenv(childArgsEnv, strings.Join(args, "\x1f"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var werr interoptest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, args, Options{Stdout: &werr, Stderr: &werr}) }()

	for i := range 4 {
		var out, errb bytes.Buffer
		callCtx, callCancel := context.WithTimeout(context.Background(), 60*time.Second)
		code := Run(callCtx, []string{"call", "--broker", url, "--backend", url, "--queue", "prefork",
			"--args", `["x"]`, "--wait", "50s", "celerity.echo"}, Options{Stdout: &out, Stderr: &errb})
		callCancel()
		if code != 0 || !strings.Contains(out.String(), `"result":["x"]`) {
			t.Fatalf("call %d: exit %d %q %s\nworker: %s", i, code, out.String(), errb.String(), werr.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		brokertest.CleanupRedisKeys(t, brokertest.RedisURL(t), "celery-task-meta-"+lines[0])
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("worker exit %d: %s", code, werr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("prefork worker did not stop")
	}
}
