package prefork

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary is its own child: started by a Pool, it serves testHandler.
func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(childMain())
	}
	if os.Getenv(childMode) == "parent" {
		os.Exit(parentMain())
	}
	os.Exit(m.Run())
}

// parentMain is a pool's parent that blocks a child on "block:$PREFORK_TEST_PATH"
// and waits to be killed (TestChildrenDieWithParent).
func parentMain() int {
	p, err := New(Config{Procs: 1, Command: func() *exec.Cmd { return exec.Command(os.Args[0]) }})
	if err == nil {
		err = p.Start(context.Background())
	}
	if err == nil {
		err = p.Submit(Request{Payload: []byte("block:" + os.Getenv("PREFORK_TEST_PATH"))}, func(Result) {})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(time.Hour)
	return 0
}

// childMode selects a misbehaving child for start-up tests.
const childMode = "PREFORK_TEST_MODE"

// childUnbatched makes a test child write each reply on its own (see
// unbatched).
const childUnbatched = "PREFORK_TEST_UNBATCHED"

// replyFd is the reply pipe, for handlers that write raw bytes to it.
var replyFd int

func childMain() int {
	env, err := parseChildEnv(os.Getenv(EnvChild))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	replyFd = env.out
	unbatched = os.Getenv(childUnbatched) == "1"
	if os.Getenv(childMode) == "badhello" {
		_, _ = syscall.Write(replyFd, []byte("Usage: not a child\n"))
		time.Sleep(time.Hour)
	}
	if err := ServeChild(testHandler); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// leaked keeps the memory "leak:N" allocates.
var leaked [][]byte

// testHandler interprets a payload as a command:
//
//	noop             reply nothing
//	echo:X           reply X
//	pid              reply the child's pid
//	rss              reply "pid rssKiB"
//	leak:N           keep N MiB (touched), reply "pid rssKiB"
//	sleep:D          sleep for duration D, reply the pid
//	block:PATH       write the pid to PATH, then sleep forever
//	spin             loop forever without a function call
//	exit:N           exit with status N
//	panic            panic("boom")
//	raw:HEX          write the bytes HEX straight to the reply pipe, then sleep forever
//	rawexit:HEX      write them, then exit 0
//	print:X          print X on stdout, reply "printed"
//	extra            write a reply frame, then reply normally (one reply too many)
//
// Anything else is echoed.
func testHandler(dst, payload []byte) []byte {
	cmd, arg, _ := strings.Cut(string(payload), ":")
	switch cmd {
	case "noop":
		return dst
	case "echo":
		return append(dst, arg...)
	case "pid":
		return strconv.AppendInt(dst, int64(os.Getpid()), 10)
	case "rss", "leak":
		if cmd == "leak" {
			n, _ := strconv.Atoi(arg)
			b := make([]byte, n<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			leaked = append(leaked, b)
		}
		statm, _ := os.Open("/proc/self/statm")
		defer statm.Close()
		dst = strconv.AppendInt(dst, int64(os.Getpid()), 10)
		dst = append(dst, ' ')
		return strconv.AppendInt(dst, residentKiB(statm), 10)
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
		return strconv.AppendInt(dst, int64(os.Getpid()), 10)
	case "block":
		_ = os.WriteFile(arg+".tmp", strconv.AppendInt(nil, int64(os.Getpid()), 10), 0o600)
		_ = os.Rename(arg+".tmp", arg)
		time.Sleep(time.Hour)
	case "spin":
		for {
		}
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	case "panic":
		panic("boom")
	case "raw", "rawexit":
		b, _ := hex.DecodeString(arg)
		_, _ = syscall.Write(replyFd, b)
		if cmd == "rawexit" {
			os.Exit(0)
		}
		time.Sleep(time.Hour)
	case "print":
		fmt.Println(arg) // the task's stdout is not the reply pipe
		return append(dst, "printed"...)
	case "extra":
		_, _ = syscall.Write(replyFd, appendFrame(nil, []byte("extra")))
		return append(dst, "normal"...)
	}
	return append(dst, payload...)
}

// harness starts pools of test children and checks that every child it
// started is gone at the end of the test.
type harness struct {
	t    testing.TB
	mu   sync.Mutex
	cmds []*exec.Cmd
	env  []string
}

func newHarness(t testing.TB, env ...string) *harness {
	t.Helper()
	h := &harness{t: t, env: env}
	return h
}

func (h *harness) command() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), h.env...)
	h.mu.Lock()
	h.cmds = append(h.cmds, cmd)
	h.mu.Unlock()
	return cmd
}

// pool starts a pool of test children; it is stopped (hard, after 20s) and
// checked for leftover processes when the test ends.
func (h *harness) pool(cfg Config) *Pool {
	h.t.Helper()
	if cfg.Command == nil {
		cfg.Command = h.command
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			h.t.Errorf("Stop: %v", err)
		}
		h.checkReaped()
	})
	return p
}

// checkReaped fails the test if a child it started is still around.
func (h *harness) checkReaped() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cmd := range h.cmds {
		if cmd.Process == nil {
			continue // never started
		}
		if cmd.ProcessState == nil {
			h.t.Errorf("child %d was not reaped", cmd.Process.Pid)
		}
		if err := syscall.Kill(cmd.Process.Pid, 0); err != syscall.ESRCH {
			h.t.Errorf("child %d still exists (kill 0: %v)", cmd.Process.Pid, err)
		}
	}
}

// submit sends one task and returns a channel that delivers its result,
// with the payload copied out of the pool's buffer.
func submit(t *testing.T, p *Pool, payload string, limit time.Duration) <-chan Result {
	t.Helper()
	ch := make(chan Result, 1)
	err := p.Submit(Request{Payload: []byte(payload), HardLimit: limit}, func(r Result) {
		r.Payload = bytes.Clone(r.Payload)
		ch <- r
	})
	if err != nil {
		t.Fatalf("Submit(%q): %v", payload, err)
	}
	return ch
}

// wait returns a result, failing the test if none comes within a minute
// (a bound against hangs, not a timing assertion).
func wait(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatal("no result within a minute")
		return Result{}
	}
}

// run submits one task and waits for its result.
func run(t *testing.T, p *Pool, payload string, limit time.Duration) Result {
	t.Helper()
	return wait(t, submit(t, p, payload, limit))
}

// mustPid runs "pid" and returns the child's pid.
func mustPid(t *testing.T, p *Pool) int {
	t.Helper()
	r := run(t, p, "pid", 0)
	if r.Err != nil {
		t.Fatalf("pid: %v", r.Err)
	}
	pid, err := strconv.Atoi(string(r.Payload))
	if err != nil {
		t.Fatalf("pid reply %q", r.Payload)
	}
	return pid
}

// blockedPid waits until a "block:path" task has started and returns the
// pid of the child running it.
func blockedPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, "task started", func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(string(b))
		return err == nil
	})
	return pid
}

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
