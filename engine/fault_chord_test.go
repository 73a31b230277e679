package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// TestMain doubles as the worker process of the fault tests: with
// CELERITY_FAULT_WORKER set to a Redis URL, the test binary runs a worker
// until it is killed.
func TestMain(m *testing.M) {
	if url := os.Getenv("CELERITY_FAULT_WORKER"); url != "" {
		os.Exit(runFaultWorker(url, os.Getenv("CELERITY_FAULT_COUNTER")))
	}
	os.Exit(m.Run())
}

// faultApp registers the fault tests' tasks: fault.slow(i) sleeps and
// returns i; fault.body(xs) counts its runs in the Redis key counterKey
// and returns sum(xs).
func faultApp(url, counterKey string) (*engine.App, rueidis.Client, error) {
	ctx := context.Background()
	b, err := redis.NewBroker(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	be, err := redis.NewBackend(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	app, err := engine.New(engine.Config{Broker: b, Backend: be, TaskAcksLate: true})
	if err != nil {
		return nil, nil, err
	}
	counter := be.Client()
	engine.Register1(app, "fault.slow", func(ctx context.Context, i int) (int, error) {
		time.Sleep(150 * time.Millisecond)
		return i, nil
	})
	engine.Register1(app, "fault.body", func(ctx context.Context, xs []int) (int, error) {
		if err := counter.Do(ctx, counter.B().Incr().Key(counterKey).Build()).Error(); err != nil {
			return 0, err
		}
		s := 0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	return app, counter, nil
}

func runFaultWorker(url, counterKey string) int {
	app, _, err := faultApp(url, counterKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 4})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestFaultChordBodyOnceAfterWorkerKill: a worker running a chord's header
// with acks_late is killed with SIGKILL; its unacknowledged header tasks
// come back after the visibility timeout and run on another worker; the
// body fires exactly once, with every header result.
func TestFaultChordBodyOnceAfterWorkerKill(t *testing.T) {
	base := brokertest.RedisURL(t)
	i := strings.LastIndex(base, "/")
	prefix := brokertest.Prefix(t)
	url := base[:i] + "/" + strconv.Itoa(canvasDB) + "?visibility_timeout=2&global_keyprefix=" + prefix
	brokertest.CleanupRedisPrefix(t, base[:i]+"/"+strconv.Itoa(canvasDB), prefix)

	counterKey := prefix + "fault:body:runs"
	app, counter, err := faultApp(url, counterKey)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Worker A, in its own process, takes the header.
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CELERITY_FAULT_WORKER="+url, "CELERITY_FAULT_COUNTER="+counterKey)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()

	const n = 16
	var header []*engine.Signature
	want := 0
	for k := range n {
		h := engine.Sig("fault.slow", k)
		h.Options.TaskID = fmt.Sprintf("%sheader-%d", prefix, k)
		header = append(header, h)
		want += k
	}
	res, err := app.ApplyChord(ctx, header, engine.Sig("fault.body"))
	if err != nil {
		t.Fatal(err)
	}
	// Kill A once some, not all, header tasks are done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := 0
		for _, h := range header {
			if ok, _ := app.Result(h.Options.TaskID).Ready(ctx); ok {
				done++
			}
		}
		if done >= 2 && done < n {
			t.Logf("killing worker A with %d of %d header tasks done", done, n)
			break
		}
		if done == n || time.Now().After(deadline) {
			t.Fatalf("could not catch the worker mid-header (%d of %d done)", done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited

	// Worker B, in this process, restores what A held after the
	// visibility timeout and finishes the header.
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { w.Run(wctx); close(stopped) }()
	defer func() { stop(); <-stopped }()

	got, err := engine.ResultOf[int](app, res.ID).Get(ctx)
	if err != nil || got != want {
		t.Fatalf("chord body = %d, %v; want %d", got, err, want)
	}
	time.Sleep(3 * time.Second) // past another visibility timeout: no late second body
	runs, err := counter.Do(ctx, counter.B().Get().Key(counterKey).Build()).AsInt64()
	if err != nil || runs != 1 {
		t.Fatalf("chord body ran %d times (%v), want exactly 1", runs, err)
	}
}
