package amqp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
)

// proxy is a TCP proxy between clients and RabbitMQ that a test can cut:
// a connection loss for the clients behind it only (rabbitmqctl
// close_all_connections would hit everyone on a shared server).
type proxy struct {
	ln     net.Listener
	target string
	refuse atomic.Bool // close new connections at once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, rawURL string) (*proxy, string) {
	t.Helper()
	u, target := brokertest.ServerAddr(t, rawURL, "5672")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refuse.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every connection through the proxy; new ones are refused
// for down.
func (p *proxy) cut(down time.Duration) {
	p.refuse.Store(true)
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	time.AfterFunc(down, func() { p.refuse.Store(false) })
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut(0)
	p.wg.Wait()
}

// runLog records task runs: ids in order, counts per id.
type runLog struct {
	mu          sync.Mutex
	runs        map[string]int
	total       int
	redelivered int
}

func newRunLog() *runLog { return &runLog{runs: map[string]int{}} }

func (r *runLog) add(id string, redelivered bool) {
	r.mu.Lock()
	r.runs[strings.Clone(id)]++ // a task id is a view that dies with the task
	r.total++
	if redelivered {
		r.redelivered++
	}
	r.mu.Unlock()
}

func (r *runLog) counts() (distinct, total, redelivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs), r.total, r.redelivered
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendWork publishes n fault.work tasks with ids task-000... to queue.
func sendWork(t *testing.T, ctx context.Context, queue string, n int) {
	t.Helper()
	b := newTestBroker(t)
	msgs := make([]*codec.Message, 0, n)
	for i := range n {
		m := newTask(queue, fmt.Sprintf("task-%04d", i))
		m.Task = []byte("fault.work")
		msgs = append(msgs, m)
	}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestFaultConnectionCutAcksLate cuts the worker's connections twice while
// it runs acks_late tasks; it reconnects, resumes, and RabbitMQ redelivers
// what the dead channels held. Every task runs; duplicates are bounded by
// what a channel can hold unacknowledged.
func TestFaultConnectionCutAcksLate(t *testing.T) {
	t.Parallel()
	const n, concurrency = 600, 8
	ctx := ctxT(t, 60*time.Second)
	queue := testQueue(t, "cut")
	sendWork(t, ctx, queue, n)
	px, pURL := newProxy(t, testURL(t))
	app, _ := newApp(t, pURL, engine.Config{TaskAcksLate: true}, WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond))
	log := newRunLog()
	engine.RegisterRaw(app, "fault.work", func(ctx context.Context, tk *engine.Task) error {
		time.Sleep(time.Millisecond)
		log.add(tk.ID, tk.Redelivered)
		return nil
	}, engine.TaskIgnoreResult(true))
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: concurrency})
	for _, at := range []int{100, 300} {
		waitFor(t, ctx, fmt.Sprintf("%d runs", at), func() bool { _, total, _ := log.counts(); return total >= at })
		px.cut(300 * time.Millisecond)
	}
	waitFor(t, ctx, "every task to run", func() bool { d, _, _ := log.counts(); return d == n })
	distinct, total, redelivered := log.counts()
	t.Logf("%d tasks, %d runs (%d duplicates), %d redelivered", distinct, total, total-distinct, redelivered)
	// Per cut: the prefetch window (4 x concurrency) plus the running tasks.
	if dup := total - distinct; dup > 2*(4*concurrency+concurrency) {
		t.Fatalf("%d duplicates, more than the lost channels could hold", dup)
	}
	if redelivered == 0 {
		t.Fatal("no task came back flagged redelivered")
	}
	admin := adminBroker(t)
	waitFor(t, ctx, "the queue to drain", func() bool { k, err := admin.QueueLen(ctx, queue); return err == nil && k == 0 })
}

// TestFaultPublishThroughCuts publishes through connection cuts: Publish
// redials and resends what was unconfirmed, so every message arrives (at
// least once) and no Publish call fails.
func TestFaultPublishThroughCuts(t *testing.T) {
	t.Parallel()
	const n, batch = 2000, 20
	ctx := ctxT(t, 60*time.Second)
	queue := testQueue(t, "pubcut")
	px, pURL := newProxy(t, testURL(t))
	b := newTestBrokerURL(t, pURL, WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond), WithPublishRetries(20))
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += batch {
			msgs := make([]*codec.Message, 0, batch)
			for j := i; j < i+batch; j++ {
				msgs = append(msgs, newTask(queue, fmt.Sprintf("p-%05d", j)))
			}
			if err := b.Publish(ctx, msgs...); err != nil {
				errc <- err
				return
			}
			sent.Add(batch)
		}
		errc <- nil
	}()
	for _, at := range []int64{400, 1200} {
		waitFor(t, ctx, fmt.Sprintf("%d published", at), func() bool { return sent.Load() >= at })
		px.cut(200 * time.Millisecond)
	}
	if err := <-errc; err != nil {
		t.Fatalf("publish through cuts: %v", err)
	}
	c, err := adminBroker(t).Consume(ctx, []string{queue}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]int{}
	buf := make([]*codec.Message, 256)
	for len(seen) < n {
		k, err := c.Fetch(ctx, buf)
		if err != nil {
			t.Fatalf("found %d of %d messages: %v", len(seen), n, err)
		}
		for _, m := range buf[:k] {
			seen[string(m.ID)]++
		}
		c.Ack(buf[:k]...)
		for _, m := range buf[:k] {
			codec.ReleaseMessage(m)
		}
	}
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	t.Logf("%d messages arrived, %d duplicates from resends", len(seen), dups)
}

// childEnv selects the child-process mode of the test binary (see
// TestMain): the kill -9 test re-executes the test binary as a worker.
const childEnv = "CELERITY_AMQP_TEST_CHILD"

// runChild is a celerity worker with acks_late running fault.work tasks
// on CHILD_URL/CHILD_QUEUE; each run appends "<id>\n" to CHILD_LOG. It
// prints "ready" after its first task and runs until killed.
func runChild() error {
	ctx := context.Background()
	b, err := NewBroker(ctx, os.Getenv("CHILD_URL"), WithLogger(quiet))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(os.Getenv("CHILD_LOG"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	app, err := engine.New(engine.Config{Broker: b, TaskAcksLate: true, Logger: quiet})
	if err != nil {
		return err
	}
	var once sync.Once
	engine.RegisterRaw(app, "fault.work", func(ctx context.Context, tk *engine.Task) error {
		time.Sleep(20 * time.Millisecond)
		if _, err := f.WriteString(tk.ID + "\n"); err != nil {
			return err
		}
		once.Do(func() { fmt.Println("ready") })
		return nil
	}, engine.TaskIgnoreResult(true))
	w, err := app.Worker(engine.WorkerConfig{Queues: []string{os.Getenv("CHILD_QUEUE")}, Concurrency: 8})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// startChild starts the test binary as a child worker; it is killed when
// the test ends. It returns once the child ran its first task.
func startChild(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=worker"}, env...)...)
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
			t.Fatal("child exited before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child not ready after 30s")
	}
	return cmd
}

// TestFaultKillWorkerMidBatch kills a worker process (kill -9) while it
// runs acks_late tasks with more prefetched: RabbitMQ requeues what its
// connection held, and a second worker runs it, flagged redelivered.
func TestFaultKillWorkerMidBatch(t *testing.T) {
	t.Parallel()
	const n = 300
	ctx := ctxT(t, 60*time.Second)
	queue := testQueue(t, "kill")
	sendWork(t, ctx, queue, n)
	logPath := t.TempDir() + "/runs"
	child := startChild(t, "CHILD_URL="+testURL(t), "CHILD_QUEUE="+queue, "CHILD_LOG="+logPath)
	childRuns := func() []string {
		data, _ := os.ReadFile(logPath)
		return strings.Fields(string(data))
	}
	waitFor(t, ctx, "the child to run 60 tasks", func() bool { return len(childRuns()) >= 60 })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := childRuns()

	log := newRunLog()
	for _, id := range before {
		log.add(id, false)
	}
	app, _ := newApp(t, "", engine.Config{TaskAcksLate: true})
	engine.RegisterRaw(app, "fault.work", func(ctx context.Context, tk *engine.Task) error {
		log.add(tk.ID, tk.Redelivered)
		return nil
	}, engine.TaskIgnoreResult(true))
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 8})
	waitFor(t, ctx, "every task to run", func() bool { d, _, _ := log.counts(); return d == n })
	// The child may have logged a few more runs before it died.
	after := childRuns()
	for _, id := range after[len(before):] {
		log.add(id, false)
	}
	distinct, total, redelivered := log.counts()
	t.Logf("child ran %d before the kill; %d tasks, %d runs (%d duplicates), %d redelivered to the second worker",
		len(after), distinct, total, total-distinct, redelivered)
	if redelivered == 0 {
		t.Fatal("nothing the killed worker held came back flagged redelivered")
	}
	if dup := total - distinct; dup > 8+32 { // concurrency + prefetch window of the dead worker
		t.Fatalf("%d duplicate runs, more than the dead worker could have held", dup)
	}
}
