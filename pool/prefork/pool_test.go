package prefork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3*bufSize+17) // larger than the pipe buffers
	for _, tc := range []struct {
		name  string
		procs int
		depth int
	}{
		{"fair", 2, 1},
		{"pipelined", 2, 8},
		{"one child deep pipeline", 1, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newHarness(t).pool(Config{Procs: tc.procs, PipelineDepth: tc.depth})
			payloads := []string{"echo:", "echo:a", "echo:" + big, "noop", "sleep:1ms"}
			const n = 500
			results := make([]<-chan Result, n)
			for i := range n {
				pl := payloads[i%len(payloads)]
				if pl == "echo:a" {
					pl = "echo:" + strconv.Itoa(i)
				}
				results[i] = submit(t, p, pl, time.Minute)
			}
			for i, ch := range results {
				r := wait(t, ch)
				if r.Err != nil {
					t.Fatalf("task %d: %v", i, r.Err)
				}
				var want string
				switch pl := payloads[i%len(payloads)]; pl {
				case "echo:a":
					want = strconv.Itoa(i)
				case "echo:" + big:
					want = big
				case "noop", "echo:":
				default:
					if _, err := strconv.Atoi(string(r.Payload)); err != nil {
						t.Fatalf("task %d (%s): reply %q", i, pl, r.Payload)
					}
					continue
				}
				if string(r.Payload) != want {
					t.Fatalf("task %d: got %d bytes, want %d", i, len(r.Payload), len(want))
				}
			}
			if s := p.Stats(); s.Lost != 0 || s.TimeLimit != 0 || s.Queued != 0 || s.InFlight != 0 {
				t.Fatalf("stats after the run: %+v", s)
			}
		})
	}
}

func TestHardLimitKillsSpinningChild(t *testing.T) {
	t.Parallel()
	p := newHarness(t).pool(Config{Procs: 1})
	before := mustPid(t, p)
	r := run(t, p, "spin", 200*time.Millisecond)
	if !errors.Is(r.Err, ErrTimeLimitExceeded) {
		t.Fatalf("spin: err = %v, want ErrTimeLimitExceeded", r.Err)
	}
	after := mustPid(t, p) // the pool goes on serving, with a new child
	if after == before {
		t.Fatalf("child %d survived its hard limit", before)
	}
	if s := p.Stats(); s.TimeLimit != 1 || s.Lost != 0 {
		t.Fatalf("stats: %+v", s)
	}
	if r := run(t, p, "sleep:10ms", time.Minute); r.Err != nil {
		t.Fatalf("a task within its limit failed: %v", r.Err)
	}
}

// Tasks pipelined behind one killed at its hard limit never started: they
// run on the replacement child instead of failing.
func TestHardLimitRequeuesPipelinedTasks(t *testing.T) {
	t.Parallel()
	p := newHarness(t).pool(Config{Procs: 1, PipelineDepth: 4})
	first := submit(t, p, "pid", time.Minute)
	spin := submit(t, p, "spin", 200*time.Millisecond)
	behind := []<-chan Result{submit(t, p, "pid", 0), submit(t, p, "pid", time.Minute)}
	r := wait(t, first)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := wait(t, spin); !errors.Is(r.Err, ErrTimeLimitExceeded) {
		t.Fatalf("spin: err = %v, want ErrTimeLimitExceeded", r.Err)
	}
	for i, ch := range behind {
		rb := wait(t, ch)
		if rb.Err != nil {
			t.Fatalf("task %d behind the killed one: %v", i, rb.Err)
		}
		if bytes.Equal(rb.Payload, r.Payload) {
			t.Fatalf("task %d behind the killed one ran in the killed child %s", i, r.Payload)
		}
	}
}

func TestMaxTasksPerChild(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{1, 2, 5} {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			t.Parallel()
			const max, n = 3, 11
			p := newHarness(t).pool(Config{Procs: 1, PipelineDepth: depth, MaxTasksPerChild: max})
			chans := make([]<-chan Result, n)
			for i := range chans {
				chans[i] = submit(t, p, "pid", 0)
			}
			var pids []string
			for _, ch := range chans {
				r := wait(t, ch)
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				pids = append(pids, string(r.Payload))
			}
			// One child: tasks run in order, exactly max per child.
			for i := range pids {
				same := i > 0 && pids[i] == pids[i-1]
				if want := i%max != 0; same != want {
					t.Fatalf("pids %v: task %d ran in a %s child", pids, i, map[bool]string{true: "reused", false: "new"}[same])
				}
			}
			if s := p.Stats(); s.Lost != 0 || s.Spawned < n/max+1 {
				t.Fatalf("stats: %+v", s)
			}
		})
	}
}

func TestMaxMemoryPerChild(t *testing.T) {
	t.Parallel()
	// Measure a child's resident memory first: it depends on the build
	// (the race detector's shadow memory counts).
	probe := newHarness(t).pool(Config{Procs: 1})
	r := run(t, probe, "rss", 0)
	var pid0, rss0 int64
	if _, err := fmt.Sscan(string(r.Payload), &pid0, &rss0); err != nil || rss0 <= 0 {
		t.Fatalf("rss reply %q: %v", r.Payload, err)
	}

	limit := rss0 + 48<<10 // KiB: 48 MiB above a fresh child
	p := newHarness(t).pool(Config{Procs: 1, MaxMemoryPerChild: limit})
	small := run(t, p, "leak:1", 0)
	leak := run(t, p, "leak:96", 0)
	for _, r := range []Result{small, leak} {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	var pidSmall, pidLeak, rss int64
	fmt.Sscan(string(small.Payload), &pidSmall)
	fmt.Sscan(string(leak.Payload), &pidLeak, &rss)
	if pidSmall != pidLeak {
		t.Fatalf("child recycled below its memory limit (rss %d KiB, limit %d KiB)", rss0, limit)
	}
	if rss <= limit {
		t.Fatalf("leak:96 left the child at %d KiB, not above the %d KiB limit", rss, limit)
	}
	if after := mustPid(t, p); int64(after) == pidLeak {
		t.Fatalf("child %d not recycled at %d KiB (limit %d KiB)", pidLeak, rss, limit)
	}
	if s := p.Stats(); s.Recycled != 1 || s.Lost != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestChildDeathMidTask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		payload string
		want    string // in the error
	}{
		{"exit:3", "exit status 3"},
		{"panic", "panic: boom"},
		{"kill", "signal: killed"},
	} {
		t.Run(tc.payload, func(t *testing.T) {
			t.Parallel()
			p := newHarness(t).pool(Config{Procs: 1, PipelineDepth: 2})
			before := mustPid(t, p)
			var ch <-chan Result
			if tc.payload == "kill" { // kill -9 from outside while the task runs
				path := filepath.Join(t.TempDir(), "started")
				ch = submit(t, p, "block:"+path, 0)
				if err := syscall.Kill(blockedPid(t, path), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			} else {
				ch = submit(t, p, tc.payload, 0)
			}
			behind := submit(t, p, "pid", 0) // pipelined behind: never started
			r := wait(t, ch)
			if !errors.Is(r.Err, ErrChildLost) || !strings.Contains(r.Err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrChildLost with %q", r.Err, tc.want)
			}
			rb := wait(t, behind)
			if rb.Err != nil {
				t.Fatalf("the task behind the lost one: %v", rb.Err)
			}
			if string(rb.Payload) == strconv.Itoa(before) {
				t.Fatal("the task behind ran in the dead child")
			}
			if s := p.Stats(); s.Lost != 1 {
				t.Fatalf("stats: %+v", s)
			}
		})
	}
}

func TestMalformedFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, payload string
		want          string // in the task's error; "" = the task succeeds
	}{
		{"oversized header", "raw:ffffffff", "exceeds the limit"},
		{"cut inside a frame", "rawexit:0500000061", "stream ends inside a frame"},
		{"cut inside a header", "rawexit:0500", "inside a frame header"},
		{"reply nobody asked for", "extra", "replies for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newHarness(t).pool(Config{Procs: 1})
			before := mustPid(t, p)
			r := run(t, p, tc.payload, 0)
			// The reply nobody asked for is seen with the real one (the task
			// is lost with the child) or after it (the task got a reply).
			if r.Err != nil || tc.name != "reply nobody asked for" {
				if !errors.Is(r.Err, ErrChildLost) || !strings.Contains(r.Err.Error(), tc.want) {
					t.Fatalf("err = %v, want ErrChildLost with %q", r.Err, tc.want)
				}
			}
			eventually(t, "child replaced", func() bool { return p.Stats().Lost == 1 })
			if after := mustPid(t, p); after == before {
				t.Fatal("the child that broke the protocol was not replaced")
			}
		})
	}
}

func TestStopSoft(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pool(Config{Procs: 2})
	var running []<-chan Result
	for range 2 {
		running = append(running, submit(t, p, "sleep:300ms", 0))
	}
	eventually(t, "both sleeps sent", func() bool { return p.Stats().InFlight == 2 })
	var queued []<-chan Result
	for range 5 {
		queued = append(queued, submit(t, p, "noop", 0))
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ch := range running {
		if r := wait(t, ch); r.Err != nil {
			t.Fatalf("in-flight task at soft stop: %v", r.Err)
		}
	}
	for _, ch := range queued {
		if r := wait(t, ch); !errors.Is(r.Err, ErrStopped) {
			t.Fatalf("queued task at stop: err = %v, want ErrStopped", r.Err)
		}
	}
	if err := p.Submit(Request{Payload: []byte("noop")}, func(Result) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Submit after Stop: %v", err)
	}
	if err := p.Resize(3); !errors.Is(err, ErrStopped) {
		t.Fatalf("Resize after Stop: %v", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	h.checkReaped()
}

func TestStopHard(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pool(Config{Procs: 1, PipelineDepth: 2})
	path := filepath.Join(t.TempDir(), "started")
	blocked := submit(t, p, "block:"+path, 0)
	behind := submit(t, p, "noop", 0)
	blockedPid(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: kill at once
	if err := p.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("hard Stop: err = %v, want context.Canceled", err)
	}
	if r := wait(t, blocked); !errors.Is(r.Err, ErrChildLost) || !strings.Contains(r.Err.Error(), "pool stopped") {
		t.Fatalf("running task at hard stop: err = %v", r.Err)
	}
	if r := wait(t, behind); !errors.Is(r.Err, ErrStopped) {
		t.Fatalf("pipelined task at hard stop: err = %v, want ErrStopped", r.Err)
	}
	h.checkReaped()
}

func TestResize(t *testing.T) {
	t.Parallel()
	p := newHarness(t).pool(Config{Procs: 1})
	if err := p.Resize(3); err != nil {
		t.Fatal(err)
	}
	if p.Size() != 3 {
		t.Fatalf("Size = %d after Resize(3)", p.Size())
	}
	// Three blocking tasks run at once: three children serve.
	dir := t.TempDir()
	var blocked []<-chan Result
	var pids []int
	for i := range 3 {
		path := filepath.Join(dir, strconv.Itoa(i))
		blocked = append(blocked, submit(t, p, "block:"+path, 0))
		pids = append(pids, blockedPid(t, path))
	}
	if s := p.Stats(); s.InFlight != 3 || s.Children != 3 {
		t.Fatalf("three blocked tasks: %+v", s)
	}
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range blocked {
		if r := wait(t, ch); !errors.Is(r.Err, ErrChildLost) {
			t.Fatalf("blocked task: %v", r.Err)
		}
	}
	eventually(t, "shrink to one child", func() bool { return p.Stats().Children == 1 })
	seen := map[int]bool{}
	for range 4 {
		seen[mustPid(t, p)] = true
	}
	if len(seen) != 1 {
		t.Fatalf("after shrinking to 1, tasks ran in %d children", len(seen))
	}
	if err := p.Resize(0); err == nil {
		t.Fatal("Resize(0) succeeded")
	}
}

func TestSubmitBeforeStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p, err := New(Config{Procs: 1, Command: h.command, Stderr: nil, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ch := submit(t, p, "echo:early", 0)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, ch); r.Err != nil || string(r.Payload) != "early" {
		t.Fatalf("task queued before Start: %q, %v", r.Payload, r.Err)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.checkReaped()
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		command func(h *harness) func() *exec.Cmd
		ctx     context.Context
		want    string
	}{
		{"not a prefork program", func(*harness) func() *exec.Cmd {
			return func() *exec.Cmd { return exec.Command("/bin/true") }
		}, context.Background(), "exited before greeting"},
		{"missing program", func(*harness) func() *exec.Cmd {
			return func() *exec.Cmd { return exec.Command("/nonexistent/celerity") }
		}, context.Background(), "no such file"},
		{"bad greeting", func(*harness) func() *exec.Cmd {
			h := newHarness(t, childMode+"=badhello")
			return h.command
		}, context.Background(), "greeted with"},
		{"context ended", func(h *harness) func() *exec.Cmd { return h.command }, cancelled, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p, err := New(Config{Procs: 2, Command: tc.command(h), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Start(tc.ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: err = %v, want %q", err, tc.want)
			}
			if err := p.Submit(Request{}, func(Result) {}); !errors.Is(err, ErrStopped) {
				t.Fatalf("Submit after a failed Start: %v", err)
			}
			h.checkReaped()
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cmd := func() *exec.Cmd { return nil }
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Command"},
		{Config{Command: cmd, Procs: -1}, "Procs"},
		{Config{Command: cmd, PipelineDepth: -2}, "PipelineDepth"},
		{Config{Command: cmd, MaxTasksPerChild: -1}, "MaxTasksPerChild"},
		{Config{Command: cmd, MaxMemoryPerChild: -1}, "MaxMemoryPerChild"},
		{Config{Command: cmd, MaxFrame: -1}, "MaxFrame"},
		{Config{Command: cmd, StartTimeout: -time.Second}, "StartTimeout"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): err = %v, want it to name %s", tc.cfg, err, tc.want)
		}
	}
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Command: func() *exec.Cmd { return nil }, MaxFrame: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(Request{Payload: make([]byte, 9)}, func(Result) {}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if err := p.Submit(Request{}, nil); err == nil {
		t.Fatal("nil done accepted")
	}
	var got []error
	var mu sync.Mutex
	if err := p.Submit(Request{}, func(r Result) { mu.Lock(); got = append(got, r.Err); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil { // never started
		t.Fatal(err)
	}
	if len(got) != 1 || !errors.Is(got[0], ErrStopped) {
		t.Fatalf("queued task of a pool stopped before Start: %v", got)
	}
}

// A task that prints does not corrupt the protocol: the pool's pipes are
// not the child's stdout.
func TestTaskOutputDoesNotCorruptFrames(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var out syncBuffer
	p := h.pool(Config{Procs: 1, Command: func() *exec.Cmd {
		cmd := h.command()
		cmd.Stdout = &out
		return cmd
	}})
	if r := run(t, p, "print:hello from a task", 0); r.Err != nil || string(r.Payload) != "printed" {
		t.Fatalf("print: %q, %v", r.Payload, r.Err)
	}
	if err := p.Stop(context.Background()); err != nil { // Wait copies the child's stdout
		t.Fatal(err)
	}
	if got := string(out.Bytes()); got != "hello from a task\n" {
		t.Fatalf("child stdout %q", got)
	}
}

// Children are started with Pdeathsig: a parent killed with SIGKILL takes
// its children, even one stuck in a task, with it.
func TestChildrenDieWithParent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "started")
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), childMode+"=parent", "PREFORK_TEST_PATH="+path)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	child := blockedPid(t, path)
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	eventually(t, "child gone after its parent", func() bool { return dead(child) })
}

// dead reports whether pid is gone or a zombie (an orphan waits for init
// to reap it).
func dead(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces; the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// Started is called as a child starts a task: the first at once, the one
// queued behind it only once the first is answered, and a task Stop
// returns unstarted never.
func TestStartedIsCalledWhenAChildStartsATask(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pool(Config{Procs: 1})
	var started [3]atomic.Bool
	results := make([]chan Result, 3)
	for i, payload := range []string{"sleep:300ms", "noop", "noop"} {
		results[i] = make(chan Result, 1)
		req := Request{Payload: []byte(payload), Started: func() { started[i].Store(true) }}
		if err := p.Submit(req, func(r Result) { results[i] <- Result{Err: r.Err} }); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			eventually(t, "the sleep started", started[0].Load)
		}
	}
	if started[1].Load() || started[2].Load() {
		t.Fatal("a task queued behind a running one was reported started")
	}
	if r := wait(t, results[0]); r.Err != nil {
		t.Fatalf("sleep: %v", r.Err)
	}
	if r := wait(t, results[1]); r.Err != nil {
		t.Fatalf("noop: %v", r.Err)
	}
	if !started[1].Load() {
		t.Fatal("the second task ran without being reported started")
	}
	if r := wait(t, results[2]); r.Err != nil {
		t.Fatalf("noop: %v", r.Err)
	}

	// Stop returns a queued task unstarted.
	stopped := make(chan Result, 1)
	var never atomic.Bool
	if err := p.Submit(Request{Payload: []byte("sleep:300ms")}, func(Result) {}); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(Request{Payload: []byte("noop"), Started: func() { never.Store(true) }},
		func(r Result) { stopped <- Result{Err: r.Err} }); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, stopped); !errors.Is(r.Err, ErrStopped) || never.Load() {
		t.Fatalf("queued task at Stop: err %v, reported started %v; want ErrStopped, never started", r.Err, never.Load())
	}
}

// TestSkipDropsAQueuedTaskUnsent: a task whose Request.Skip says so as it
// leaves the queue is never sent to a child (never started) and gets
// ErrSkipped once, outside the pool's lock (its done may Submit again);
// the tasks around it run.
func TestSkipDropsAQueuedTaskUnsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pool(Config{Procs: 1})
	var revoked, started atomic.Bool
	first := make(chan Result, 1)
	skipped := make(chan Result, 2)
	after := make(chan Result, 1)
	if err := p.Submit(Request{Payload: []byte("sleep:300ms")}, func(r Result) { first <- Result{Err: r.Err} }); err != nil {
		t.Fatal(err)
	}
	req := Request{Payload: []byte("noop"), Skip: revoked.Load, Started: func() { started.Store(true) }}
	if err := p.Submit(req, func(r Result) {
		skipped <- Result{Err: r.Err}
		if err := p.Submit(Request{Payload: []byte("noop")}, func(r Result) { after <- Result{Err: r.Err} }); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true) // while the first task runs, the second waits in the queue
	if r := wait(t, first); r.Err != nil {
		t.Fatalf("first: %v", r.Err)
	}
	if r := wait(t, skipped); !errors.Is(r.Err, ErrSkipped) || started.Load() {
		t.Fatalf("skipped task: err %v, started %v; want ErrSkipped, never started", r.Err, started.Load())
	}
	if r := wait(t, after); r.Err != nil {
		t.Fatalf("task submitted from the skipped one's done: %v", r.Err)
	}
	if len(skipped) != 0 {
		t.Fatal("done called twice for the skipped task")
	}
	if s := p.Stats(); s.Queued != 0 || s.InFlight != 0 {
		t.Fatalf("stats after: %+v, want nothing queued or in flight", s)
	}
}
