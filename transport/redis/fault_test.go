package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// childEnv selects the child process mode of the test binary (see
// TestMain): the fault tests re-execute the test binary as a worker they
// can kill -9.
const childEnv = "CELERITY_REDIS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is the body of a child process. Its configuration comes from
// the environment: CHILD_URL, CHILD_PREFIX, CHILD_QUEUE, CHILD_VT (visibility
// timeout), CHILD_N. It prints "ready" once it holds or runs messages and
// then runs until it is killed.
//
//   - "worker": a celerity worker with acks_late running fault.work tasks,
//     which sleep 20ms and record their run in Redis (SADD <prefix>done id,
//     INCR <prefix>runs).
//   - "hold": a bare consumer that fetches CHILD_N messages and holds them.
func runChild(mode string) error {
	url, prefix, queue := os.Getenv("CHILD_URL"), os.Getenv("CHILD_PREFIX"), os.Getenv("CHILD_QUEUE")
	vt, _ := time.ParseDuration(os.Getenv("CHILD_VT"))
	if vt == 0 {
		vt = time.Hour
	}
	ctx := context.Background()
	b, err := redis.NewBroker(ctx, url, redis.WithGlobalKeyPrefix(prefix), redis.WithVisibilityTimeout(vt), redis.WithLogger(quiet))
	if err != nil {
		return err
	}
	switch mode {
	case "hold":
		n, _ := strconv.Atoi(os.Getenv("CHILD_N"))
		c, err := b.Consume(ctx, []string{queue}, n)
		if err != nil {
			return err
		}
		buf := make([]*codec.Message, n)
		for got := 0; got < n; {
			k, err := c.Fetch(ctx, buf[got:])
			if err != nil {
				return err
			}
			got += k
		}
		fmt.Println("ready")
		select {}
	case "worker":
		app, err := engine.New(engine.Config{Broker: b, TaskAcksLate: true, Logger: quiet})
		if err != nil {
			return err
		}
		rc := b.Client()
		registerFaultWork(app, rc, prefix)
		w, err := app.Worker(engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
		if err != nil {
			return err
		}
		var once sync.Once
		app.SetHooks(engine.Hooks{TaskPrerun: func(*engine.Task) { once.Do(func() { fmt.Println("ready") }) }})
		return w.Run(ctx)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// registerFaultWork registers fault.work: sleep 20ms, then record the run.
func registerFaultWork(app *engine.App, rc rueidis.Client, prefix string) {
	engine.RegisterRaw(app, "fault.work", func(ctx context.Context, t *engine.Task) error {
		time.Sleep(20 * time.Millisecond)
		for _, r := range rc.DoMulti(context.Background(),
			rc.B().Sadd().Key(prefix+"done").Member(t.ID).Build(),
			rc.B().Incr().Key(prefix+"runs").Build()) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	}, engine.TaskIgnoreResult(true))
}

// startChild starts the test binary in child mode; it is killed when the
// test ends. It returns once the child printed "ready".
func startChild(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	ready := make(chan bool, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		cmd.Wait()
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("child %s exited before it was ready", mode)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("child %s not ready after 30s", mode)
	}
	return cmd
}

// kill9 kills the child with SIGKILL and waits until it is gone.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cmd.Process.Signal(syscall.Signal(0)) == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // reaped by the reader goroutine's Wait
	}
}

// TestFaultKillWorkerMidBatch kills a worker process (kill -9) while it
// runs acks_late tasks with more prefetched; another worker finishes the
// job once the visibility timeout has passed. Every task runs; the only
// duplicates are tasks that were running or done-but-not-acked at the kill.
func TestFaultKillWorkerMidBatch(t *testing.T) {
	t.Parallel()
	const n = 300
	vt := 2 * time.Second
	raw := testURL(t)
	b, prefix := newBroker(t, redis.WithVisibilityTimeout(vt), redis.WithLogger(quiet))
	queue := "faultq"
	ctx := ctxT(t, 60*time.Second)
	app, err := engine.New(engine.Config{Broker: b, TaskAcksLate: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for i := range n {
		if err := app.SendRaw(ctx, "fault.work", []byte("[]"), nil, engine.Queue(queue), engine.TaskID(fmt.Sprintf("task-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	rc := b.Client()
	child := startChild(t, "worker", "CHILD_URL="+raw, "CHILD_PREFIX="+prefix, "CHILD_QUEUE="+queue, "CHILD_VT="+vt.String())
	for {
		runs, _ := rc.Do(ctx, rc.B().Get().Key(prefix+"runs").Build()).AsInt64()
		if runs >= 60 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the child worker made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill9(t, child)
	held, _ := rc.Do(ctx, rc.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
	t.Logf("killed the worker holding %d unacknowledged messages", held)

	// A second worker (in this process) picks up the rest, and after the
	// visibility timeout what the dead one held.
	registerFaultWork(app, rc, prefix)
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
	for {
		done, _ := rc.Do(ctx, rc.B().Scard().Key(prefix+"done").Build()).AsInt64()
		unacked, _ := rc.Do(ctx, rc.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
		if done == n && unacked == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d tasks ran (%d still unacked)", done, n, unacked)
		}
		time.Sleep(20 * time.Millisecond)
	}
	runs, _ := rc.Do(ctx, rc.B().Get().Key(prefix+"runs").Build()).AsInt64()
	t.Logf("%d tasks, %d runs: %d duplicates (tasks running or awaiting their ack at the kill)", n, runs, runs-n)
	if runs-n > 8+32 { // concurrency + prefetch window of the killed worker
		t.Fatalf("%d duplicate runs, more than the dead worker could have held", runs-n)
	}
}

// freePort returns a TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// privateRedis runs a redis-server of our own on a free port with an
// append-only file fsynced on every write, so that a kill -9 loses nothing
// it acknowledged. start and kill control it; it is killed when the test
// ends.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func newPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		brokertest.Unavailable(t, "no redis-server binary to run a private server")
	}
	r := &privateRedis{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("private redis-server did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *privateRedis) kill() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// TestFaultRedisRestart kills the Redis server (kill -9) in the middle of a
// stream of tasks and restarts it: producer, worker, acks and results
// carry on by themselves; every task runs and every result is stored.
func TestFaultRedisRestart(t *testing.T) {
	t.Parallel()
	srv := newPrivateRedis(t)
	app, _, be := newApp(t, srv.url(), engine.Config{TaskAcksLate: true}, redis.WithLogger(quiet))
	var mu sync.Mutex
	runs := map[string]int{}
	engine.RegisterRaw(app, "fault.count", func(ctx context.Context, t *engine.Task) error {
		mu.Lock()
		runs[strings.Clone(t.ID)]++ // a view that dies with the task
		mu.Unlock()
		t.Return([]byte(`"ok"`))
		return nil
	})
	runWorker(t, app, engine.WorkerConfig{Concurrency: 4})
	ctx := ctxT(t, 90*time.Second)

	const n = 1500
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	var late *engine.AsyncResult[any]
	lateReady := make(chan struct{})
	go func() {
		for i := range n {
			opts := []engine.Option{engine.TaskID(fmt.Sprintf("rt-%04d", i))}
			if i == n/3 {
				opts = append(opts, engine.Countdown(1500*time.Millisecond)) // result written after the restart
			}
			res, err := app.SendTask(ctx, "fault.count", nil, nil, opts...)
			if err != nil {
				sendErr <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			if i == n/3 {
				late = res
				close(lateReady)
			}
			sent.Add(1)
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		sendErr <- nil
	}()
	// Wait for the subscription on the late task before the crash.
	<-lateReady
	lateDone := make(chan error, 1)
	go func() {
		v, err := late.Get(ctx)
		if err == nil && v != "ok" {
			err = fmt.Errorf("late task result %v", v)
		}
		lateDone <- err
	}()
	for sent.Load() < n/2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	srv.kill()
	t.Logf("killed redis-server after %d of %d sends", sent.Load(), n)
	time.Sleep(300 * time.Millisecond)
	srv.start()
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if err := <-lateDone; err != nil {
		t.Fatalf("waiting across the restart: %v", err)
	}
	for {
		mu.Lock()
		k := len(runs)
		mu.Unlock()
		if k == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d tasks ran", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	dup := 0
	mu.Lock()
	for _, c := range runs {
		dup += c - 1
	}
	mu.Unlock()
	missing := 0
	for i := range n {
		deadline := time.Now().Add(10 * time.Second)
		for {
			rec, found, err := be.GetResult(ctx, fmt.Sprintf("rt-%04d", i), nil)
			if err == nil && found && strings.Contains(string(rec), `"SUCCESS"`) {
				break
			}
			if time.Now().After(deadline) {
				missing++
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d tasks: all ran, %d duplicate runs, %d results missing", n, dup, missing)
	if missing > 0 {
		t.Fatalf("%d results missing", missing)
	}
}
