package timelimit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// fakeClock is a settable monotonic clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64 { return c.ns.Load() }

// newFake returns a stopped Tracker on a fake clock at 0; tests fire limits
// with expire.
func newFake(resolution time.Duration) (*Tracker, *fakeClock) {
	tr := New(resolution)
	c := new(fakeClock)
	tr.now = c.now
	return tr, c
}

// log collects "name:limit" events in the order targets are called.
type log struct {
	mu     sync.Mutex
	events []string
}

// recorder is a Target that logs to a log.
type recorder struct {
	log  *log
	name string
}

func (r *recorder) TimeLimitExceeded(l Limit) {
	r.log.mu.Lock()
	r.log.events = append(r.log.events, r.name+":"+l.String())
	r.log.mu.Unlock()
}

func (g *log) target(name string) *recorder { return &recorder{log: g, name: name} }

func (g *log) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.events
	g.events = nil
	return out
}

func expect(t *testing.T, g *log, want ...string) {
	t.Helper()
	if got := g.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestSoftFiresBeforeHard(t *testing.T) {
	t.Parallel()
	tr, clock := newFake(time.Millisecond)
	var g log
	clock.ns.Store(5 * ms)
	h := tr.Track(Limits{Soft: 50 * time.Millisecond, Hard: 100 * time.Millisecond}, g.target("a"))
	tr.expire(54 * ms)
	expect(t, &g)
	tr.expire(55 * ms)
	expect(t, &g, "a:soft")
	tr.expire(104 * ms)
	expect(t, &g)
	tr.expire(105 * ms)
	expect(t, &g, "a:hard")
	if tr.Len() != 0 {
		t.Errorf("Len = %d after the last limit fired", tr.Len())
	}
	if h.Done() {
		t.Error("Done after the hard limit fired reported stopping it")
	}
}

func TestLateWakeStillFiresSoftThenHard(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	var g log
	h := tr.Track(Limits{Soft: time.Second, Hard: 2 * time.Second}, g.target("a"))
	if n := tr.expire(10 * int64(time.Second)); n != 2 {
		t.Errorf("expire fired %d, want 2", n)
	}
	expect(t, &g, "a:soft", "a:hard")
	h.Done()
}

func TestDoneBeforeDeadlineFiresNothing(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	var g log
	h := tr.Track(Limits{Soft: time.Second, Hard: 2 * time.Second}, g.target("a"))
	if tr.Len() != 1 {
		t.Fatalf("Len = %d", tr.Len())
	}
	if !h.Done() {
		t.Error("Done before any deadline reported nothing stopped")
	}
	if h.Done() {
		t.Error("second Done reported stopping something")
	}
	tr.expire(time.Hour.Nanoseconds())
	expect(t, &g)
	if tr.Len() != 0 {
		t.Errorf("Len = %d after Done", tr.Len())
	}
	if (Handle{}).Done() {
		t.Error("zero Handle Done reported stopping something")
	}
}

func TestDoneAfterSoftStopsHard(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	var g log
	h := tr.Track(Limits{Soft: time.Second, Hard: 2 * time.Second}, g.target("a"))
	tr.expire(int64(time.Second))
	expect(t, &g, "a:soft")
	if !h.Done() {
		t.Error("Done between soft and hard should stop the hard limit")
	}
	tr.expire(time.Hour.Nanoseconds())
	expect(t, &g)
}

func TestLimitsSelection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits Limits
		want   []string
	}{
		{"soft only", Limits{Soft: time.Second}, []string{"r:soft"}},
		{"hard only", Limits{Hard: time.Second}, []string{"r:hard"}},
		{"soft equals hard: hard only", Limits{Soft: time.Second, Hard: time.Second}, []string{"r:hard"}},
		{"soft beyond hard: hard only", Limits{Soft: 2 * time.Second, Hard: time.Second}, []string{"r:hard"}},
		{"negative means none", Limits{Soft: -time.Second, Hard: time.Second}, []string{"r:hard"}},
		{"none", Limits{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, _ := newFake(time.Millisecond)
			var g log
			h := tr.Track(tt.limits, g.target("r"))
			if (h == Handle{}) != (tt.want == nil) {
				t.Errorf("Handle %+v for %+v", h, tt.limits)
			}
			tr.expire(time.Hour.Nanoseconds())
			expect(t, &g, tt.want...)
			if tr.Len() != 0 {
				t.Errorf("Len = %d", tr.Len())
			}
		})
	}
}

func TestLimitsOrFollowsCeleryPrecedence(t *testing.T) {
	t.Parallel()
	s := time.Second
	worker := Limits{Soft: 50 * s, Hard: 60 * s}
	tests := []struct {
		name       string
		call, task Limits
		want       Limits
	}{
		{"all defaults", Limits{}, Limits{}, worker},
		{"task overrides worker", Limits{}, Limits{Soft: 5 * s, Hard: 10 * s}, Limits{Soft: 5 * s, Hard: 10 * s}},
		{"call overrides task", Limits{Hard: 2 * s}, Limits{Soft: 5 * s, Hard: 10 * s}, Limits{Soft: 5 * s, Hard: 2 * s}},
		{"zero falls through", Limits{Soft: 0, Hard: 3 * s}, Limits{}, Limits{Soft: 50 * s, Hard: 3 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.call.Or(tt.task).Or(worker); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLimitErrors(t *testing.T) {
	t.Parallel()
	if Soft.Err() != ErrSoftTimeLimitExceeded || Hard.Err() != ErrTimeLimitExceeded || Limit(0).Err() != nil {
		t.Error("Limit.Err mapping")
	}
	if Soft.String() != "soft" || Hard.String() != "hard" || Limit(9).String() != "none" {
		t.Error("Limit.String")
	}
	wrapped := fmt.Errorf("task tasks.slow: %w", ErrSoftTimeLimitExceeded)
	if !errors.Is(wrapped, ErrSoftTimeLimitExceeded) || errors.Is(wrapped, ErrTimeLimitExceeded) {
		t.Error("sentinels must be distinct and wrappable")
	}
}

func TestResolutionRoundsUpNeverEarly(t *testing.T) {
	t.Parallel()
	tr, clock := newFake(10 * time.Millisecond)
	var g log
	clock.ns.Store(3 * ms)
	tr.Track(Limits{Hard: time.Millisecond}, g.target("a")) // due at 4ms, rounded to 10ms
	tr.Track(Limits{Hard: 5 * time.Millisecond}, g.target("b"))
	clock.ns.Store(10 * ms)
	tr.Track(Limits{Hard: 10 * time.Millisecond}, g.target("c")) // exactly 20ms
	tr.expire(9 * ms)
	expect(t, &g)
	tr.expire(10 * ms)
	expect(t, &g, "a:hard", "b:hard") // one wake-up, in Track order
	tr.expire(19 * ms)
	expect(t, &g)
	tr.expire(20 * ms)
	expect(t, &g, "c:hard")
}

// TestManyDeadlinesFireInOrder tracks 2000 runs with random limits, ends a
// third of them early, and advances the fake clock in random steps: exactly
// the unfinished runs' limits fire, in deadline order, soft before hard.
func TestManyDeadlinesFireInOrder(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	rng := rand.New(rand.NewPCG(7, 7))
	type run struct {
		soft, hard int64
		h          Handle
		done       bool
	}
	var g log
	runs := make([]run, 2000)
	for i := range runs {
		r := &runs[i]
		r.soft = (1 + rng.Int64N(5000)) * ms
		r.hard = r.soft + (1+rng.Int64N(100))*ms
		r.h = tr.Track(Limits{Soft: time.Duration(r.soft), Hard: time.Duration(r.hard)}, g.target(fmt.Sprint(i)))
	}
	for i := range runs {
		if i%3 == 0 {
			runs[i].done = true
			if !runs[i].h.Done() {
				t.Fatalf("run %d: Done before any deadline returned false", i)
			}
		}
	}
	type ev struct {
		at   int64
		name string
	}
	var want []ev
	for i, r := range runs {
		if !r.done {
			want = append(want, ev{r.soft, fmt.Sprint(i) + ":soft"}, ev{r.hard, fmt.Sprint(i) + ":hard"})
		}
	}
	var got []ev
	for now := int64(0); now <= 6000*ms; now += rng.Int64N(50) * ms {
		tr.expire(now)
		for _, e := range g.take() {
			got = append(got, ev{now, e})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events fired, want %d", len(got), len(want))
	}
	fired := make(map[string]int64, len(got))
	for i, e := range got {
		fired[e.name] = e.at
		if i > 0 && e.at < got[i-1].at {
			t.Fatalf("event %s at %d after one at %d", e.name, e.at, got[i-1].at)
		}
	}
	// Every event fired at the first expire at or after its deadline, and
	// events due in the same expire came out in deadline order.
	idx := make(map[string]int, len(got))
	for i, e := range got {
		idx[e.name] = i
	}
	for _, w := range want {
		at, ok := fired[w.name]
		if !ok || at < w.at {
			t.Fatalf("%s: fired at %d (%v), due %d", w.name, at, ok, w.at)
		}
	}
	slices.SortStableFunc(want, func(a, b ev) int { return int(a.at - b.at) })
	for i := 1; i < len(want); i++ {
		a, b := want[i-1], want[i]
		if a.at < b.at && idx[a.name] > idx[b.name] {
			t.Fatalf("%s (due %d) fired after %s (due %d)", a.name, a.at, b.name, b.at)
		}
	}
	if tr.Len() != 0 {
		t.Errorf("Len = %d after everything fired", tr.Len())
	}
}

// blockingTarget blocks in its call until released.
type blockingTarget struct {
	entered chan struct{}
	release chan struct{}
	exited  atomic.Bool
}

func (b *blockingTarget) TimeLimitExceeded(Limit) {
	close(b.entered)
	<-b.release
	b.exited.Store(true)
}

func TestDoneWaitsForCallInProgress(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	bt := &blockingTarget{entered: make(chan struct{}), release: make(chan struct{})}
	h := tr.Track(Limits{Soft: time.Millisecond, Hard: time.Hour}, bt)
	go tr.expire(ms)
	<-bt.entered
	doneReturned := make(chan bool)
	go func() { doneReturned <- h.Done() }()
	waitFor(t, "Done to block", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.waiters == 1
	})
	close(bt.release)
	if !<-doneReturned {
		t.Error("Done after the soft call should stop the hard limit")
	}
	if !bt.exited.Load() {
		t.Error("Done returned while the call for its run was still running")
	}
}

// doneOther is a Target that ends another run from inside its call.
type doneOther struct {
	other   *Handle
	stopped bool
	called  []Limit
}

func (d *doneOther) TimeLimitExceeded(l Limit) {
	d.called = append(d.called, l)
	if d.other != nil {
		d.stopped = d.other.Done()
	}
}

// TestTargetMayEndAnotherRunDueAtTheSameTime guards against a deadlock: a
// call that ends a run whose limit is due in the same wake-up.
func TestTargetMayEndAnotherRunDueAtTheSameTime(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	var hb Handle
	a := &doneOther{other: &hb}
	b := &doneOther{}
	tr.Track(Limits{Hard: time.Second}, a)
	hb = tr.Track(Limits{Hard: time.Second}, b)
	if n := tr.expire(int64(time.Second)); n != 1 {
		t.Errorf("expire made %d calls, want 1", n)
	}
	if !a.stopped || len(b.called) != 0 {
		t.Errorf("run b: stopped=%v, called %v; want stopped before its call", a.stopped, b.called)
	}
	if tr.Len() != 0 {
		t.Errorf("Len = %d", tr.Len())
	}
}

func TestSlabReusesEntries(t *testing.T) {
	t.Parallel()
	tr, _ := newFake(time.Millisecond)
	target := TargetFunc(func(Limit) {})
	for range 100 {
		hs := []Handle{tr.Track(Limits{Hard: time.Second}, target), tr.Track(Limits{Hard: time.Second}, target)}
		for _, h := range hs {
			h.Done()
		}
	}
	if len(tr.entries) != 2 {
		t.Errorf("slab grew to %d entries for 2 concurrent runs", len(tr.entries))
	}
	stale := tr.Track(Limits{Hard: time.Second}, target)
	stale.Done()
	fresh := tr.Track(Limits{Hard: time.Second}, target) // reuses the slot
	if stale.Done() {
		t.Error("a stale handle ended the run now using its slot")
	}
	if !fresh.Done() {
		t.Error("fresh handle could not end its run")
	}
}

// waitFor polls cond; the cap only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

// runGoroutines counts the goroutines serving tr, from all stacks.
func runGoroutines(tr *Tracker) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fmt.Sprintf("timelimit.(*Tracker).run(%p", tr))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestStartServesInDeadlineOrder runs the Tracker's own goroutine and timer.
// The clock is fake, so the order does not depend on scheduling: the timer
// wakes the goroutine (re-armed earlier by each Track, latest first), and
// once the clock jumps everything fires in deadline order.
func TestStartServesInDeadlineOrder(t *testing.T) {
	t.Parallel()
	tr, clock := newFake(time.Millisecond)
	tr.Start()
	defer tr.Stop()
	var g log
	fired := make(chan struct{}, 8)
	for i := 3; i >= 0; i-- {
		r := g.target(fmt.Sprint(i))
		d := time.Duration(i+1) * time.Millisecond
		tr.Track(Limits{Soft: d, Hard: d + 10*time.Millisecond}, TargetFunc(func(l Limit) {
			r.TimeLimitExceeded(l)
			fired <- struct{}{}
		}))
	}
	clock.ns.Store(int64(time.Hour))
	for range 8 {
		<-fired
	}
	expect(t, &g, "0:soft", "1:soft", "2:soft", "3:soft", "0:hard", "1:hard", "2:hard", "3:hard")
}

// TestStopIsClean: Stop leaves no goroutine behind, can be repeated, keeps
// tracked runs, and a later Start fires what fell due meanwhile.
func TestStopIsClean(t *testing.T) {
	t.Parallel()
	tr := New(time.Millisecond)
	tr.Stop() // never started: nothing to do
	for range 3 {
		tr.Start()
		tr.Start()
		// A goroutine that has not run yet shows no arguments in its stack.
		waitFor(t, "the Tracker goroutine to start", func() bool { return runGoroutines(tr) == 1 })
		tr.Stop()
		tr.Stop()
		waitFor(t, "the Tracker goroutine to exit", func() bool { return runGoroutines(tr) == 0 })
	}
	fired := make(chan Limit, 1)
	h := tr.Track(Limits{Hard: time.Nanosecond}, TargetFunc(func(l Limit) { fired <- l }))
	time.Sleep(2 * time.Millisecond) // let the limit pass while stopped
	if tr.Len() != 1 || len(fired) != 0 {
		t.Fatalf("a stopped Tracker fired or dropped a run: Len %d, fired %d", tr.Len(), len(fired))
	}
	tr.Start()
	if l := <-fired; l != Hard {
		t.Errorf("fired %v", l)
	}
	tr.Stop()
	h.Done()
	waitFor(t, "the Tracker goroutine to exit", func() bool { return runGoroutines(tr) == 0 })
}

// TestConcurrentTrackAndDone hammers a started Tracker from many goroutines
// with limits around the runs' lengths. Per run: at most one soft and one
// hard call, soft first, none after Done returned. Run with -race.
func TestConcurrentTrackAndDone(t *testing.T) {
	t.Parallel()
	tr := New(50 * time.Microsecond)
	tr.Start()
	defer tr.Stop()
	var softs, hards atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				r := &checkedRun{t: t}
				h := tr.Track(Limits{Soft: 100 * time.Microsecond, Hard: 300 * time.Microsecond}, r)
				time.Sleep(time.Duration(rng.Int64N(400)) * time.Microsecond)
				h.Done()
				r.mu.Lock()
				r.ended = true
				if r.soft {
					softs.Add(1)
				}
				if r.hard {
					hards.Add(1)
				}
				r.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if tr.Len() != 0 {
		t.Errorf("Len = %d after every run ended", tr.Len())
	}
	t.Logf("2400 runs: %d soft, %d hard limits fired", softs.Load(), hards.Load())
}

type checkedRun struct {
	t          *testing.T
	mu         sync.Mutex
	soft, hard bool
	ended      bool
}

func (r *checkedRun) TimeLimitExceeded(l Limit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.ended:
		r.t.Errorf("%v call after Done returned", l)
	case l == Soft && (r.soft || r.hard):
		r.t.Error("soft call repeated or after hard")
	case l == Hard && r.hard:
		r.t.Error("hard call repeated")
	}
	if l == Soft {
		r.soft = true
	} else {
		r.hard = true
	}
}
