package beat_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/beat"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// interopDB is the Redis database of the Python interop test (Python's
// Celery has no key prefix here); the test uses its own queue and lock
// key and deletes only its own keys.
const interopDB = "11"

// TestPythonWorkerRunsBeatSentTasks: beat sends interop.add on a schedule
// and the real Python Celery worker runs it, storing the results under the
// ids beat gave the runs.
func TestPythonWorkerRunsBeatSentTasks(t *testing.T) {
	t.Parallel()
	dir := brokertest.Celery(t)
	u, err := url.Parse(brokertest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawQuery = "/"+interopDB, ""
	dbURL := u.String()
	var rnd [4]byte
	rand.Read(rnd[:])
	queue := "beat-interop-" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	b, err := redis.NewBroker(ctx, dbURL, redis.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	be, err := redis.NewBackend(ctx, dbURL, redis.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	app, err := engine.New(engine.Config{Broker: b, Backend: be, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	lockKey := queue + ":celerity.beat"
	var sentIDs []string
	t.Cleanup(func() { // our keys only: the queue, its binding, the lock, the results
		c, err := redis.NewBroker(context.Background(), dbURL, redis.WithLogger(quiet))
		if err != nil {
			return
		}
		defer c.Close()
		rc := c.Client()
		keys := []string{queue, "_kombu.binding." + queue, lockKey, lockKey + ":ticks"}
		for _, id := range sentIDs {
			keys = append(keys, "celery-task-meta-"+id)
		}
		rc.Do(context.Background(), rc.B().Del().Key(keys...).Build())
	})

	cmd := exec.Command(brokertest.Python, "-m", "celery", "-A", "py_app", "worker", "-P", "solo", "-Q", queue,
		"-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", queue+"@%h")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+dbURL, "CELERY_RESULT_BACKEND="+dbURL, "PYTHONDONTWRITEBYTECODE=1")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	workerDone := make(chan struct{})
	go func() { cmd.Wait(); close(workerDone) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-workerDone:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-workerDone
		}
		if t.Failed() {
			t.Logf("python worker:\n%s", logs.String())
		}
	}()

	iv, err := beat.NewInterval(500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan beat.Sent, 16)
	s, err := beat.NewService(app, beat.ServiceConfig{
		Locker: beat.NewRedisLocker(b.Client(), lockKey),
		Logger: quiet,
		Entries: []*beat.Entry{{Name: "add", Task: "interop.add", Schedule: iv,
			Args: json.RawMessage(`[2]`), Kwargs: json.RawMessage(`{"y": 3}`),
			Options: beat.Options{Queue: queue, Expires: time.Minute}}},
		OnSend: func(x beat.Sent) {
			select {
			case sent <- x:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	for len(sentIDs) < 2 {
		select {
		case x := <-sent:
			if x.Err != nil {
				t.Fatal(x.Err)
			}
			sentIDs = append(sentIDs, x.ID)
		case <-ctx.Done():
			t.Fatal("beat sent nothing")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range sentIDs {
		m, err := app.Result(id).Wait(ctx)
		if err != nil {
			t.Fatalf("result of %s: %v", id, err)
		}
		if m.StateName != "SUCCESS" || string(m.Result) != "5" {
			t.Fatalf("result of %s: %s %s %s", id, m.StateName, m.Result, m.Traceback)
		}
	}
}
