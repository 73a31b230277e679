package interoptest

import (
	"bytes"
	"context"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes, for the logs
// of a child process or a worker.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Worker starts the real Python Celery worker, `celery -A app worker -P
// solo -Q queue`, in dir with env (its broker and backend URLs), named
// py-<queue>@<host>. It runs until the test ends or stop is called (a warm
// SIGTERM, then a kill after 10 s); its log is printed if the test failed.
// kill9 kills it with SIGKILL, so that it cannot restore what it holds.
func Worker(t testing.TB, dir string, env []string, app, queue string) (stop, kill9 func()) {
	t.Helper()
	cmd := exec.Command(brokertest.Python, "-m", "celery", "-A", app, "worker",
		"-P", "solo", "-Q", queue, "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
		"-n", "py-"+queue+"@%h")
	cmd.Env, cmd.Dir = env, dir
	var logs SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("python worker %s log:\n%s", queue, logs.String())
			}
		})
	}
	t.Cleanup(stop)
	kill9 = func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	return stop, kill9
}

// Script runs `python3 args...` (a script and its arguments) in dir with
// env and stdin, to completion within timeout, and returns its stdout; a
// failure fails the test with the script's stderr.
func Script(t testing.TB, dir string, env []string, stdin []byte, timeout time.Duration, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokertest.Python, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = env, dir, bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %v: %v\n%s", args, err, stderr.String())
	}
	return out
}
