package beat

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
)

// fakeClock is the time of a test that drives Service.step by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// recorder is a Sender that keeps what it was asked to send, and the
// OnSend reports.
type recorder struct {
	mu    sync.Mutex
	tasks []string
	sent  []Sent
	err   error
	// block, if set, makes SendRaw wait for ctx.
	block bool
}

func (r *recorder) SendRaw(ctx context.Context, name string, args, kwargs []byte, _ ...engine.Option) error {
	r.mu.Lock()
	r.tasks = append(r.tasks, name+" "+string(args)+" "+string(kwargs))
	block, err := r.block, r.err
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (r *recorder) onSend(s Sent) {
	r.mu.Lock()
	r.sent = append(r.sent, s)
	r.mu.Unlock()
}

func (r *recorder) list() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

var t0 = time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)

// quiet drops the logs of services under test.
var quiet = slog.New(slog.DiscardHandler)

func every(t testing.TB, d time.Duration) *Interval {
	t.Helper()
	s, err := NewInterval(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stepService returns a service driven by clk, with its state restored
// at clk's time.
func stepService(t *testing.T, rec *recorder, clk *fakeClock, cfg ServiceConfig) *Service {
	t.Helper()
	cfg.OnSend = rec.onSend
	cfg.Logger = quiet
	if cfg.Locker == nil {
		l := NewMemoryLocker()
		l.now = clk.now
		cfg.Locker = l
	}
	s, err := NewService(rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	return s
}

func ticks(list []Sent) []time.Time {
	out := make([]time.Time, len(list))
	for i, s := range list {
		out[i] = s.Tick
	}
	return out
}

func TestServiceStepSendsEachDueRunOnceAndSleepsUntilNext(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	rec := &recorder{}
	cron := mustCron(t, "* * * * *", time.UTC)
	s := stepService(t, rec, clk, ServiceConfig{LeaseTTL: time.Minute, Entries: []*Entry{
		{Name: "iv", Task: "t.iv", Schedule: every(t, 10*time.Second), Args: json.RawMessage(`[1]`)},
		{Name: "cron", Task: "t.cron", Schedule: cron, Kwargs: json.RawMessage(`{"a": 1}`)},
	}})
	sec := func(f float64) time.Time { return t0.Add(time.Duration(f * float64(time.Second))) }
	for _, st := range []struct {
		at    float64
		sends int       // sends so far
		wake  time.Time // next wake-up
	}{
		{0, 0, sec(10)},      // nothing due; the interval is first
		{5, 0, sec(10)},      // spurious wake-up
		{10, 1, sec(20)},     // interval run; renewal also at 20
		{10, 1, sec(20)},     // same instant again: not twice
		{20.5, 2, sec(30.5)}, // renewed; interval again
		{61, 4, sec(71)},     // 30.5, 40.5, 50.5 missed: one run; cron 12:01
	} {
		clk.t = sec(st.at)
		wake := s.step(context.Background(), clk.t)
		if got := len(rec.list()); got != st.sends {
			t.Fatalf("at %vs: %d sends, want %d", st.at, got, st.sends)
		}
		if !wake.Equal(st.wake) {
			t.Fatalf("at %vs: wake at %v, want %v", st.at, wake, st.wake)
		}
	}
	got := rec.list()
	want := []struct {
		entry string
		tick  time.Time
	}{{"iv", sec(10)}, {"iv", sec(20)}, {"iv", sec(30.5)}, {"cron", sec(60)}}
	for i, w := range want {
		g := got[i]
		if g.Entry != w.entry || !g.Tick.Equal(w.tick) || g.ID != TaskID(w.entry, "t."+w.entry, w.tick) || g.Err != nil {
			t.Errorf("send %d: %+v, want %s at tick %v", i, g, w.entry, w.tick)
		}
	}
	if rec.tasks[0] != "t.iv [1] " || rec.tasks[3] != `t.cron  {"a": 1}` {
		t.Errorf("sent %q", rec.tasks)
	}
	if st := s.State(); st.Entries["iv"].TotalRunCount != 3 || !st.Entries["iv"].LastRunAt.Equal(sec(61)) {
		t.Errorf("state %+v", st.Entries["iv"])
	}
}

// TestServiceHandOverAfterLeaderDies: the standby takes over once the dead
// leader's lease expires, continues the same sequence of runs and sends the
// run that fell due meanwhile once.
func TestServiceHandOverAfterLeaderDies(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	locker := NewMemoryLocker()
	locker.now = clk.now
	rec := &recorder{}
	newInstance := func(name string) *Service {
		return stepService(t, rec, clk, ServiceConfig{Name: name, Locker: locker, LeaseTTL: 3 * time.Second,
			RetryInterval: time.Second, Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 2*time.Second)}}})
	}
	a, b := newInstance("a"), newInstance("b")
	at := func(s *Service, sec float64) {
		clk.t = t0.Add(time.Duration(sec * float64(time.Second)))
		s.step(context.Background(), clk.t)
	}
	at(a, 0)
	clk.t = t0.Add(500 * time.Millisecond)
	b.restore() // b started a little later: alone, it would run at 2.5, 4.5...
	at(b, 0.5)
	if !a.IsLeader() || b.IsLeader() {
		t.Fatalf("leaders: a %v, b %v", a.IsLeader(), b.IsLeader())
	}
	at(a, 2) // sends tick 2, renews until 5
	at(b, 2.5)
	at(b, 4) // a is dead but its lease holds until 5
	if b.IsLeader() || len(rec.list()) != 1 {
		t.Fatalf("b took over early: leader %v, sends %v", b.IsLeader(), ticks(rec.list()))
	}
	at(b, 5.1) // takes over: tick 4 is due, sent once
	at(b, 5.2)
	at(b, 7.1)
	got := ticks(rec.list())
	want := []time.Time{t0.Add(2 * time.Second), t0.Add(4 * time.Second), t0.Add(7100 * time.Millisecond)}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
	if st := b.State(); st.Entries["e"].TotalRunCount != 3 {
		t.Errorf("run count %d, want 3 (continued from a's)", st.Entries["e"].TotalRunCount)
	}

	// A soft stop releases the lease: a new instance takes it at once.
	if err := locker.Release(context.Background(), b.token); err != nil {
		t.Fatal(err)
	}
	c := newInstance("c")
	at(c, 7.2)
	if !c.IsLeader() {
		t.Fatal("c did not take the released lease")
	}
	at(c, 9.1) // continues from b's last run
	got = ticks(rec.list())
	if len(got) != 4 || !got[3].Equal(t0.Add(9100*time.Millisecond)) {
		t.Fatalf("ticks after release %v", got)
	}
}

// TestServiceStaleLeaderCannotSend: a leader whose lease expired while it
// was paused (its clock has not moved on) cannot claim a run the new
// leader may send.
func TestServiceStaleLeaderCannotSend(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	locker := NewMemoryLocker()
	lockerTime := t0
	locker.now = func() time.Time { return lockerTime }
	rec := &recorder{}
	cfg := func(name string) ServiceConfig {
		return ServiceConfig{Name: name, Locker: locker, LeaseTTL: 3 * time.Second,
			Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 500*time.Millisecond)}}}
	}
	a, b := stepService(t, rec, clk, cfg("a")), stepService(t, rec, clk, cfg("b"))
	a.step(context.Background(), t0) // leader until t0+3 by the locker's clock
	lockerTime = t0.Add(4 * time.Second)
	clk.t = t0.Add(4 * time.Second)
	b.step(context.Background(), clk.t) // takes over and sends
	n := len(rec.list())
	if !b.IsLeader() || n != 1 {
		t.Fatalf("b leader %v, %d sends", b.IsLeader(), n)
	}
	// a wakes believing it is t0+0.9: before its renewal, so it claims.
	a.step(context.Background(), t0.Add(900*time.Millisecond))
	if a.IsLeader() || len(rec.list()) != n {
		t.Fatalf("stale leader: leader %v, sends %v", a.IsLeader(), ticks(rec.list()))
	}
}

func TestServiceRestartNeitherSkipsNorRepeats(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "beat-state.json")
	rec := &recorder{}
	clk := &fakeClock{t0}
	start := func() *Service {
		return stepService(t, rec, clk, ServiceConfig{StateFile: path,
			Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 10*time.Second)}}})
	}
	s := start()
	for _, sec := range []int{0, 10, 20} {
		clk.t = t0.Add(time.Duration(sec) * time.Second)
		s.step(context.Background(), clk.t)
	}
	// Killed at 25 (no shutdown): the file was written before each send.
	clk.t = t0.Add(25 * time.Second)
	s = start()
	s.step(context.Background(), clk.t) // 20 is not repeated
	clk.t = t0.Add(30 * time.Second)
	s.step(context.Background(), clk.t) // 30 is not skipped
	// Down from 31 to 75: 40..70 were missed and are sent once, at once.
	clk.t = t0.Add(75 * time.Second)
	s = start()
	s.step(context.Background(), clk.t)
	clk.t = t0.Add(80 * time.Second)
	s.step(context.Background(), clk.t) // next is 85
	want := []time.Time{t0.Add(10 * time.Second), t0.Add(20 * time.Second), t0.Add(30 * time.Second), t0.Add(40 * time.Second)}
	if got := ticks(rec.list()); !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
	st, err := ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if es := st.Entries["e"]; es.TotalRunCount != 4 || !es.LastRunAt.Equal(t0.Add(75*time.Second)) {
		t.Fatalf("state file %+v", es)
	}
}

// TestServiceAdoptsLaterRecords: a new leader's local state is older than
// the shared records (another instance ran meanwhile): the records win.
func TestServiceAdoptsLaterRecords(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0.Add(time.Hour)}
	locker := NewMemoryLocker()
	locker.now = clk.now
	ctx := context.Background()
	if _, err := locker.Acquire(ctx, "other", time.Second); err != nil {
		t.Fatal(err)
	}
	last := t0.Add(time.Hour - 3*time.Second)
	if err := locker.Claim(ctx, "other", "e", Record{Tick: last, LastRunAt: last, TotalRunCount: 7}); err != nil {
		t.Fatal(err)
	}
	if err := locker.Release(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	old := &State{Timezone: "UTC", Entries: map[string]EntryState{"e": {LastRunAt: t0, TotalRunCount: 2}}}
	if err := WriteStateFile(path, old); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := stepService(t, rec, clk, ServiceConfig{Locker: locker, StateFile: path, LeaseTTL: time.Minute,
		Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 10*time.Second)}}})
	wake := s.step(ctx, clk.t)
	if len(rec.list()) != 0 {
		t.Fatalf("sent %v: the old local state made it look due", ticks(rec.list()))
	}
	if want := last.Add(10 * time.Second); !wake.Equal(want) {
		t.Fatalf("wake %v, want %v", wake, want)
	}
	if es := s.State().Entries["e"]; es.TotalRunCount != 7 || !es.LastRunAt.Equal(last) {
		t.Fatalf("state %+v", es)
	}
}

// TestServiceSeedsRecordsForASuccessor: a leader that never sent an entry
// still records where its schedule starts, so a successor does not
// restart the interval from its own start time.
func TestServiceSeedsRecordsForASuccessor(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	locker := NewMemoryLocker()
	locker.now = clk.now
	rec := &recorder{}
	cfg := func(name string) ServiceConfig {
		return ServiceConfig{Name: name, Locker: locker, LeaseTTL: time.Second,
			Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, time.Minute)}}}
	}
	a := stepService(t, rec, clk, cfg("a"))
	a.step(context.Background(), clk.t)
	clk.t = t0.Add(30 * time.Second)
	b := stepService(t, rec, clk, cfg("b")) // on its own, b would run at 1m30s
	b.step(context.Background(), clk.t)
	clk.t = t0.Add(time.Minute)
	b.step(context.Background(), clk.t)
	if got := ticks(rec.list()); len(got) != 1 || !got[0].Equal(t0.Add(time.Minute)) {
		t.Fatalf("ticks %v, want [%v]", got, t0.Add(time.Minute))
	}
}

func TestServiceRetriesFailedClaimsAndLogsFailedSends(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	rec := &recorder{err: errors.New("broker down")}
	fl := &flakyLocker{MemoryLocker: NewMemoryLocker()}
	fl.now = clk.now
	s := stepService(t, rec, clk, ServiceConfig{Locker: fl, LeaseTTL: 3 * time.Minute, RetryInterval: time.Second,
		Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 10*time.Second)}}})
	s.step(context.Background(), clk.t)
	fl.fail = true
	clk.t = t0.Add(10 * time.Second)
	if wake := s.step(context.Background(), clk.t); !wake.Equal(t0.Add(11*time.Second)) || len(rec.list()) != 0 {
		t.Fatalf("failed claim: wake %v, sends %d", wake, len(rec.list()))
	}
	fl.fail = false
	clk.t = t0.Add(11 * time.Second)
	s.step(context.Background(), clk.t)
	got := rec.list()
	if len(got) != 1 || got[0].Err == nil || !got[0].Tick.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("sends %+v", got)
	}
	// A refused send is not retried (Celery's behaviour): next run at 21.
	clk.t = t0.Add(12 * time.Second)
	if wake := s.step(context.Background(), clk.t); !wake.Equal(t0.Add(21*time.Second)) || len(rec.list()) != 1 {
		t.Fatalf("after a failed send: wake %v, sends %d", wake, len(rec.list()))
	}
}

// flakyLocker fails claims on demand.
type flakyLocker struct {
	*MemoryLocker
	fail bool
}

func (l *flakyLocker) Claim(ctx context.Context, token, name string, rec Record) error {
	if l.fail {
		return errors.New("connection refused")
	}
	return l.MemoryLocker.Claim(ctx, token, name, rec)
}

func TestServiceRunSoftStopSavesAndReleases(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	locker := NewMemoryLocker()
	sent := make(chan Sent, 100)
	s, err := NewService(&recorder{}, ServiceConfig{StateFile: path, Locker: locker, Name: "soft", Logger: quiet,
		Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, 20*time.Millisecond)}},
		OnSend:  func(x Sent) { sent <- x }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for range 3 {
		select {
		case <-sent:
		case <-time.After(10 * time.Second):
			t.Fatal("no send")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.IsLeader() {
		t.Error("still leader after Run returned")
	}
	held, err := locker.Acquire(context.Background(), "next", time.Minute)
	if err != nil || !held {
		t.Fatalf("lease not released: %v %v", held, err)
	}
	st, err := ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Entries["e"].TotalRunCount; n != 3+len(sent) {
		t.Fatalf("state file run count %d, want %d", n, 3+len(sent))
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestServiceTerminateCancelsASendInFlight(t *testing.T) {
	t.Parallel()
	sent := make(chan Sent, 1)
	started := make(chan struct{})
	rec := &recorder{block: true}
	s, err := NewService(rec, ServiceConfig{Logger: quiet, Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, time.Millisecond)}},
		OnSend: func(x Sent) { sent <- x }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	go func() {
		for {
			rec.mu.Lock()
			n := len(rec.tasks)
			rec.mu.Unlock()
			if n > 0 {
				close(started)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	<-started
	s.Terminate()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if x := <-sent; !errors.Is(x.Err, context.Canceled) {
		t.Fatalf("send error %v, want context.Canceled", x.Err)
	}
}

func TestServiceRunFailsOnACorruptStateFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteStateFile(path, &State{}); err != nil {
		t.Fatal(err)
	}
	corrupt := []byte(`{"version": 99}`)
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewService(&recorder{}, ServiceConfig{StateFile: path, Logger: quiet,
		Entries: []*Entry{{Name: "e", Task: "t", Schedule: every(t, time.Second)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrState) {
		t.Fatalf("Run: %v, want ErrState", err)
	}
}

func TestNewServiceRejectsBadConfig(t *testing.T) {
	t.Parallel()
	iv := every(t, time.Second)
	ok := func() *Entry { return &Entry{Name: "e", Task: "t", Schedule: iv} }
	with := func(f func(e *Entry)) []*Entry { e := ok(); f(e); return []*Entry{e} }
	for _, tc := range []struct {
		name string
		send Sender
		cfg  ServiceConfig
		want string
	}{
		{"no sender", nil, ServiceConfig{}, "no Sender"},
		{"nil entry", &recorder{}, ServiceConfig{Entries: []*Entry{nil}}, "entry 0 is nil"},
		{"no name", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Name = "" })}, "has no name"},
		{"duplicate", &recorder{}, ServiceConfig{Entries: []*Entry{ok(), ok()}}, `"e" appears twice`},
		{"no task", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Task = "" })}, "no task"},
		{"no schedule", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Schedule = nil })}, "no schedule"},
		{"args object", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Args = json.RawMessage(`{}`) })}, "args: want a JSON array"},
		{"kwargs bad", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Kwargs = json.RawMessage(`{"a":`) })}, "kwargs: want a JSON object"},
		{"priority", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Options.Priority, e.Options.HasPriority = 200, true })}, "priority 200"},
		{"serializer", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Options.Serializer = "bogus" })}, `unknown serializer "bogus"`},
		{"compression", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Options.Compression = "lz9" })}, `unknown compression "lz9"`},
		{"headers", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Options.Headers = json.RawMessage(`[1]`) })}, "headers: want a JSON object"},
		{"expires", &recorder{}, ServiceConfig{Entries: with(func(e *Entry) { e.Options.Expires = -1 })}, "negative expires"},
		{"ttl", &recorder{}, ServiceConfig{LeaseTTL: -time.Second}, "LeaseTTL -1s is negative"},
		{"tiny ttl", &recorder{}, ServiceConfig{LeaseTTL: time.Microsecond}, "under a millisecond"},
		{"retry", &recorder{}, ServiceConfig{RetryInterval: -1}, "RetryInterval -1ns is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewService(tc.send, tc.cfg)
			if !errors.Is(err, ErrServiceConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrServiceConfig with %q", err, tc.want)
			}
		})
	}
}

func TestServiceDefaults(t *testing.T) {
	t.Parallel()
	s, err := NewService(&recorder{}, ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.MaxInterval != DefaultMaxInterval || c.LeaseTTL != DefaultLeaseTTL || c.RetryInterval != DefaultRetryInterval ||
		c.Location != time.UTC || !strings.HasPrefix(c.Name, "beat@") || !strings.HasPrefix(s.token, c.Name+"/") {
		t.Fatalf("defaults %+v, token %q", c, s.token)
	}
	s, err = NewService(&recorder{}, ServiceConfig{LeaseTTL: 900 * time.Millisecond})
	if err != nil || s.cfg.RetryInterval != 300*time.Millisecond {
		t.Fatalf("retry interval with a short lease: %v %v", s.cfg.RetryInterval, err)
	}
}

// TestServiceMapsOptionsOntoTheMessage sends through a real App on the
// memory transport and reads the message back.
func TestServiceMapsOptionsOntoTheMessage(t *testing.T) {
	t.Parallel()
	app, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	entries, err := ParseConfigJSON([]byte(`{"report": {"task": "tasks.report", "schedule": 10,
		"args": [1, "a"], "kwargs": {"full": true},
		"options": {"queue": "reports", "priority": 5, "expires": 300, "time_limit": 60,
		            "soft_time_limit": 50.5, "headers": {"x-source": "beat"}}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t0}
	s, err := NewService(app, ServiceConfig{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	s.step(context.Background(), clk.t)
	clk.t = t0.Add(10 * time.Second)
	before := time.Now()
	s.step(context.Background(), clk.t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := app.Broker().Consume(ctx, []string{"reports"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]*codec.Message, 1)
	if n, err := c.Fetch(ctx, buf); n != 1 || err != nil {
		t.Fatalf("fetch: %d %v", n, err)
	}
	m := buf[0]
	defer codec.ReleaseMessage(m)
	wantID := TaskID("report", "tasks.report", t0.Add(10*time.Second))
	checks := []struct {
		what string
		ok   bool
	}{
		{"task", string(m.Task) == "tasks.report"},
		{"id", string(m.ID) == wantID},
		{"routing key", string(m.RoutingKey) == "reports" && len(m.Exchange) == 0},
		{"priority", m.Priority == 5},
		{"expires", !m.Expires.Before(before.Add(300*time.Second)) && m.Expires.Before(time.Now().Add(301*time.Second))},
		{"time limits", m.TimeLimit.HasHard && m.TimeLimit.Hard == 60 && m.TimeLimit.HasSoft && m.TimeLimit.Soft == 50.5},
		{"headers", strings.Contains(string(m.ExtraHeaders), `"x-source":"beat"`)},
		{"body", strings.HasPrefix(string(m.Body), `[[1, "a"], {"full": true}, `) || strings.HasPrefix(string(m.Body), `[[1,"a"],{"full":true},`)},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s wrong: task %s id %s rk %q ex %q prio %d expires %v tl %+v headers %s body %s", ch.what,
				m.Task, m.ID, m.RoutingKey, m.Exchange, m.Priority, m.Expires, m.TimeLimit, m.ExtraHeaders, m.Body)
		}
	}
}

func TestTaskIDIsAUUIDOfEntryTaskAndTick(t *testing.T) {
	t.Parallel()
	id := TaskID("e", "t", t0)
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' || id[14] != '5' ||
		!strings.ContainsRune("89ab", rune(id[19])) {
		t.Fatalf("TaskID %q is not a version-5 UUID", id)
	}
	if TaskID("e", "t", t0.In(mustLoc(t, "Europe/Berlin"))) != id {
		t.Error("the id depends on the tick's location")
	}
	seen := map[string]string{id: "base"}
	for what, other := range map[string]string{
		"tick+1ns": TaskID("e", "t", t0.Add(1)),
		"entry":    TaskID("e2", "t", t0),
		"task":     TaskID("e", "t2", t0),
		"split":    TaskID("et", "", t0),
	} {
		if prev, dup := seen[other]; dup {
			t.Errorf("%s has the id of %s", what, prev)
		}
		seen[other] = what
	}
}
