package codec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
)

// interopDB is the Redis database this package's interop test uses (DB 14
// is reserved for codec captures and tests); it only touches its own keys.
const interopDB = 14

// TestPythonWorkerRunsOurMessages LPUSHes envelopes encoded by
// AppendRedisEnvelope onto a fresh queue, runs the real Python Celery
// worker on it, and decodes the result records it writes.
func TestPythonWorkerRunsOurMessages(t *testing.T) {
	t.Parallel()
	rawURL := brokertest.RedisURL(t)
	dir := brokertest.Celery(t)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	brokerURL := fmt.Sprintf("redis://%s/%d", host, interopDB)
	queue := brokertest.Prefix(t) + "q"
	rc := dialRESP(t, host, interopDB)

	type job struct {
		m      *Message
		result any // expected result value
	}
	now := time.Now().UTC()
	var jobs []job
	add := func(task, args, kwargs string, setup func(m *Message), result any) {
		m := AcquireMessage()
		t.Cleanup(func() { ReleaseMessage(m) })
		m.Task = m.OwnString(task)
		m.NewID()
		m.NewDeliveryTag()
		m.Body = AppendJSONBody(nil, []byte(args), []byte(kwargs), nil)
		m.RoutingKey = m.OwnString(queue)
		m.Origin = m.OwnString("gotest@localhost")
		m.ArgsRepr, m.KwargsRepr = m.OwnString(args), m.OwnString(kwargs)
		if setup != nil {
			setup(m)
		}
		jobs = append(jobs, job{m, result})
	}
	add("interop.add", "[2, 40]", "", nil, 42.0)
	add("interop.add", "[1]", `{"y": 2}`, func(m *Message) {
		m.ETA = now.Add(-time.Second)
		m.Expires = now.Add(time.Minute)
		m.TimeLimit = TimeLimit{Hard: 30, Soft: 20.5, HasHard: true, HasSoft: true}
		m.Retries = 1
		m.Group, m.GroupIndex, m.HasGroupIndex = m.OwnString("0a4f0ef4-5d1e-4d6a-9d0c-1d7f3b0c2a11"), 0, true
		m.ParentID = m.OwnString("9b1e6b7c-3f1a-4a43-8a5e-5b8f5a3c1d22")
		m.RootID = m.ParentID
		m.Shadow = m.OwnString("shadowed")
		m.ExtraHeaders = m.OwnString(`{"x-go": [1, "two", null]}`)
		m.Expiration, m.HasExpiration = 60000, true
	}, 3.0)
	add("interop.echo", `[1, "h\u00e9llo \"q\"\n\ud83d\ude00", [3.5, null, true]]`, `{"k": {"nested": "\\/"}}`, nil,
		map[string]any{"args": []any{1.0, "h\u00e9llo \"q\"\n\U0001F600", []any{3.5, nil, true}}, "kwargs": map[string]any{"k": map[string]any{"nested": "\\/"}}})

	keys := []string{queue, "_kombu.binding." + queue}
	for _, j := range jobs {
		keys = append(keys, "celery-task-meta-"+string(j.m.ID))
	}
	t.Cleanup(func() {
		args := append([]string{"DEL"}, keys...)
		if _, err := rc.do(args...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		rc.close()
	})
	var env []byte
	for _, j := range jobs {
		env = AppendRedisEnvelope(env[:0], j.m)
		if _, err := rc.do("LPUSH", queue, string(env)); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokertest.Python, "-m", "celery", "-A", "py_app", "worker", "-P", "solo",
		"-Q", queue, "-n", "gotest-"+strconv.Itoa(os.Getpid())+"@localhost", "-l", "warning",
		"--without-gossip", "--without-mingle", "--without-heartbeat")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CELERY_BROKER_URL="+brokerURL, "CELERY_RESULT_BACKEND="+brokerURL,
		"CELERY_RESULT_EXTENDED=1", "CELERY_DEFAULT_QUEUE="+queue)
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
	}
	defer stop()

	for _, j := range jobs {
		key := "celery-task-meta-" + string(j.m.ID)
		var raw []byte
		for raw == nil {
			v, err := rc.do("GET", key)
			if err != nil {
				t.Fatal(err)
			}
			if b, ok := v.([]byte); ok {
				raw = b
				break
			}
			if ctx.Err() != nil {
				stop()
				log, _ := os.ReadFile(logPath)
				t.Fatalf("no result for %s %s within the deadline; worker log:\n%s", j.m.Task, j.m.ID, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var r Result
		if err := DecodeResultJSON(raw, &r); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
		var got any
		if err := json.Unmarshal(r.Result, &got); err != nil {
			t.Fatal(err)
		}
		if r.State != StateSuccess || !reflect.DeepEqual(got, j.result) || string(r.TaskID) != string(j.m.ID) ||
			r.DateDone.IsZero() || !r.Extended || string(r.Name) != string(j.m.Task) || string(r.Queue) != queue ||
			string(r.GroupID) != string(j.m.Group) || string(r.ParentID) != string(j.m.ParentID) || r.Retries != j.m.Retries {
			t.Errorf("%s: result record %s", j.m.Task, raw)
		}
		if since := time.Since(r.DateDone); since < -time.Minute || since > 2*time.Minute {
			t.Errorf("date_done %v is not now", r.DateDone)
		}
	}
	stop()
	if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "Traceback") {
		t.Errorf("worker logged a traceback:\n%s", log)
	}
}

// respConn is the smallest Redis client the interop test needs.
type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRESP(t *testing.T, host string, db int) *respConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := &respConn{c: c, r: bufio.NewReader(c)}
	if _, err := rc.do("SELECT", strconv.Itoa(db)); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *respConn) close() { rc.c.Close() }

// do sends one command and returns its reply: string (status), int64,
// []byte (bulk), nil, or []any.
func (rc *respConn) do(args ...string) (any, error) {
	if err := rc.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return rc.reply()
}

func (rc *respConn) reply() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("bad RESP line %q", line)
}
