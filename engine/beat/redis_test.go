package beat_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/beat"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// childEnv selects the child mode of the test binary (see TestMain): the
// hand-over test runs beat instances as processes it can kill -9.
const childEnv = "CELERITY_BEAT_TEST_CHILD"

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Timings of the hand-over test: an every-second entry, a lease of one
// second (no longer than the interval, so a dead leader's run is delayed,
// not skipped) and standbys retrying every 200ms.
const (
	tickEvery  = time.Second
	leaseTTL   = time.Second
	retryEvery = 200 * time.Millisecond
)

// childSend is one line a child prints per send.
type childSend struct {
	Name  string    `json:"name"`
	Entry string    `json:"entry"`
	Task  string    `json:"task"`
	ID    string    `json:"id"`
	Tick  time.Time `json:"tick"`
	At    time.Time `json:"at"`
	Err   string    `json:"err"`
}

// runChild runs one beat instance on the Redis broker CHILD_URL (whose
// global_keyprefix is CHILD_PREFIX) until SIGTERM (soft stop) or SIGKILL,
// printing a childSend line per send.
func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	b, err := redis.NewBroker(ctx, os.Getenv("CHILD_URL"), redis.WithLogger(quiet))
	if err != nil {
		return err
	}
	app, err := engine.New(engine.Config{Broker: b, Logger: quiet})
	if err != nil {
		return err
	}
	defer app.Close()
	iv, err := beat.NewInterval(tickEvery)
	if err != nil {
		return err
	}
	name := os.Getenv("CHILD_NAME")
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	s, err := beat.NewService(app, beat.ServiceConfig{
		Name:          name,
		Locker:        beat.NewRedisLocker(b.Client(), os.Getenv("CHILD_PREFIX")+"celerity.beat"),
		LeaseTTL:      leaseTTL,
		RetryInterval: retryEvery,
		Logger:        quiet,
		Entries: []*beat.Entry{{Name: "tick", Task: "beat.test.tick", Schedule: iv,
			Args: json.RawMessage(`[1]`), Options: beat.Options{Queue: os.Getenv("CHILD_QUEUE")}}},
		OnSend: func(x beat.Sent) {
			line := childSend{Name: name, Entry: x.Entry, Task: x.Task, ID: x.ID, Tick: x.Tick, At: x.At}
			if x.Err != nil {
				line.Err = x.Err.Error()
			}
			mu.Lock()
			enc.Encode(line)
			mu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// instance is a running child.
type instance struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// cluster runs child beat instances and collects their sends.
type cluster struct {
	t                  *testing.T
	url, prefix, queue string
	mu                 sync.Mutex
	sends              []childSend
	insts              map[string]*instance
	stderr             strings.Builder
}

func (c *cluster) start(name string) {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_URL="+c.url, "CHILD_PREFIX="+c.prefix,
		"CHILD_QUEUE="+c.queue, "CHILD_NAME="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	in := &instance{name: name, cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.insts[name] = in
	c.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s childSend
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				s.Err = fmt.Sprintf("bad line %q: %v", sc.Text(), err)
			}
			c.mu.Lock()
			c.sends = append(c.sends, s)
			c.mu.Unlock()
		}
		in.err = cmd.Wait()
		close(in.done)
	}()
	c.t.Cleanup(func() { cmd.Process.Kill(); <-in.done })
}

// signal sends sig to the instance and waits for it to exit.
func (c *cluster) signal(name string, sig os.Signal) {
	c.t.Helper()
	c.mu.Lock()
	in := c.insts[name]
	delete(c.insts, name)
	c.mu.Unlock()
	in.cmd.Process.Signal(sig)
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		c.t.Fatalf("instance %s did not exit on %v", name, sig)
	}
	if sig == syscall.SIGTERM && in.err != nil {
		c.t.Fatalf("instance %s: %v\n%s", name, in.err, c.stderrText())
	}
}

func (c *cluster) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

func (c *cluster) list() []childSend {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sends)
}

// waitSends waits until n sends were seen and returns them.
func (c *cluster) waitSends(n int) []childSend {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := c.list(); len(l) >= n {
			return l
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("saw %d sends, want %d; children's stderr:\n%s", len(c.list()), n, c.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leader is the instance that sent last.
func (c *cluster) leader() string {
	l := c.list()
	return l[len(l)-1].Name
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestBeatsOnRedisSendEveryTickOnceAcrossHandOvers runs beat instances as
// processes on the real Redis: two instances send an every-second entry N
// times in N seconds; the leader is killed with SIGKILL (a third instance
// joins), then the next leader is stopped with SIGTERM. Every run of the
// entry must be sent exactly once, continue the one sequence of runs
// (each tick is the previous run's time + 1s) and reach the queue once.
func TestBeatsOnRedisSendEveryTickOnceAcrossHandOvers(t *testing.T) {
	t.Parallel()
	url := brokertest.RedisURL(t)
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, url, prefix)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	c := &cluster{t: t, url: url + sep + "global_keyprefix=" + prefix, prefix: prefix, queue: "beat-ticks",
		insts: map[string]*instance{}}
	c.start("a")
	c.start("b")

	// Phase 1: two instances, N seconds.
	const n = 5
	phase1 := c.waitSends(n + 1)
	if took := phase1[n].At.Sub(phase1[0].At); took < (n-1)*tickEvery || took > (n+1)*tickEvery {
		t.Errorf("%d sends after the first took %v, want %ds±1s", n, took, n)
	}

	// Phase 2: kill -9 the leader (its lease stays until it expires); a
	// third instance joins so that two run.
	time.Sleep(400 * time.Millisecond) // mid-interval, after a renewal
	killed := c.leader()
	killedAt := time.Now()
	c.signal(killed, syscall.SIGKILL)
	c.start("c")
	before := len(c.list())
	c.waitSends(before + 3)

	// Phase 3: stop the new leader softly: it releases the lease.
	time.Sleep(400 * time.Millisecond)
	stopped := c.leader()
	if stopped == killed {
		t.Fatalf("%s sent after it was killed", killed)
	}
	stoppedAt := time.Now()
	c.signal(stopped, syscall.SIGTERM)
	before = len(c.list())
	c.waitSends(before + 3)

	c.mu.Lock()
	rest := make([]string, 0, len(c.insts))
	for name := range c.insts {
		rest = append(rest, name)
	}
	c.mu.Unlock()
	for _, name := range rest {
		c.signal(name, syscall.SIGTERM)
	}
	sends := c.list()

	// Every send succeeded, with the task id of its tick, and continues
	// the single sequence of runs.
	ids := map[string]bool{}
	var gaps []string
	for i, s := range sends {
		if s.Err != "" || s.Entry != "tick" || s.ID != beat.TaskID("tick", "beat.test.tick", s.Tick) {
			t.Fatalf("send %d: %+v", i, s)
		}
		if ids[s.ID] {
			t.Fatalf("send %d: tick %v sent twice", i, s.Tick)
		}
		ids[s.ID] = true
		if i == 0 {
			continue
		}
		prev := sends[i-1]
		if want := prev.At.Add(tickEvery); !s.Tick.Equal(want) {
			t.Errorf("send %d by %s: tick %v, want %v (the previous run by %s + 1s)", i, s.Name, s.Tick, want, prev.Name)
		}
		gap := s.At.Sub(prev.At)
		gaps = append(gaps, fmt.Sprintf("%s %.3fs", s.Name, gap.Seconds()))
		limit := tickEvery + retryEvery + 500*time.Millisecond // a stop: the standby takes over at once
		if prev.Name == killed && s.Name != killed {
			limit = tickEvery + leaseTTL + retryEvery + 500*time.Millisecond // a kill: the lease must expire
		}
		if gap > limit {
			t.Errorf("send %d: %v after the previous one (%s -> %s), limit %v", i, gap, prev.Name, s.Name, limit)
		}
	}
	t.Logf("killed %s at %s, stopped %s at %s; %d sends, gaps: %s", killed, killedAt.Format("15:04:05.000"),
		stopped, stoppedAt.Format("15:04:05.000"), len(sends), strings.Join(gaps, ", "))

	// The queue holds each of them once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.NewBroker(ctx, url, redis.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc := b.Client()
	raw, err := rc.Do(ctx, rc.B().Lrange().Key(prefix+"beat-ticks").Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, r := range raw {
		m := codec.AcquireMessage()
		if err := codec.DecodeRedisEnvelope([]byte(r), m); err != nil {
			t.Fatal(err)
		}
		id := string(m.ID)
		codec.ReleaseMessage(m)
		if queued[id] {
			t.Fatalf("message %s is in the queue twice", id)
		}
		queued[id] = true
		if !ids[id] {
			t.Errorf("queued message %s was not reported sent", id)
		}
	}
	if len(queued) != len(ids) {
		t.Fatalf("%d messages queued, %d sent", len(queued), len(ids))
	}
}
