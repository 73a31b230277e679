package timelimit

import (
	"errors"
	"math"
	"sync"
	"time"
)

// ErrSoftTimeLimitExceeded is the cause a task's context is cancelled with
// when its soft time limit is reached (Celery's SoftTimeLimitExceeded).
var ErrSoftTimeLimitExceeded = errors.New("SoftTimeLimitExceeded: soft time limit exceeded")

// ErrTimeLimitExceeded is the error a task fails with when its hard time
// limit is reached (Celery's TimeLimitExceeded).
var ErrTimeLimitExceeded = errors.New("TimeLimitExceeded: hard time limit exceeded")

// Limit names one of a run's two time limits.
type Limit uint8

const (
	// Soft is the soft time limit (soft_time_limit).
	Soft Limit = iota + 1
	// Hard is the hard time limit (time_limit).
	Hard
)

// String returns "soft" or "hard".
func (l Limit) String() string {
	switch l {
	case Soft:
		return "soft"
	case Hard:
		return "hard"
	}
	return "none"
}

// Err returns ErrSoftTimeLimitExceeded for Soft, ErrTimeLimitExceeded for
// Hard, and nil otherwise.
func (l Limit) Err() error {
	switch l {
	case Soft:
		return ErrSoftTimeLimitExceeded
	case Hard:
		return ErrTimeLimitExceeded
	}
	return nil
}

// Limits are a run's soft and hard time limits. A zero or negative field
// means no such limit, as a missing or zero limit does in Celery. A soft
// limit at or beyond the hard limit never fires: the hard limit comes first.
type Limits struct {
	Soft time.Duration // soft_time_limit
	Hard time.Duration // time_limit
}

// Or returns l with each unset field taken from d: Celery's precedence, in
// which a limit from the message's "timelimit" header wins over the task's
// own, which wins over the worker default:
//
//	call.Or(task).Or(worker)
func (l Limits) Or(d Limits) Limits {
	if l.Soft <= 0 {
		l.Soft = d.Soft
	}
	if l.Hard <= 0 {
		l.Hard = d.Hard
	}
	return l
}

// Target is told when a tracked run reaches a limit. TimeLimitExceeded is
// called at most once per Limit per run, Soft before Hard, from the
// Tracker's goroutine; calls for different runs are serial.
//
// On Soft the engine cancels the run's context with ErrSoftTimeLimitExceeded
// as the cause. On Hard it fails the task with ErrTimeLimitExceeded, cancels
// the context with that cause, and (goroutine pool) abandons the slot.
//
// An implementation must return quickly and must not wait for the task, nor
// call Done on the handle being fired: Done waits for a call in progress.
// Calling Track, or Done on other handles, is allowed.
type Target interface {
	TimeLimitExceeded(l Limit)
}

// TargetFunc adapts a function to Target. A func value built per run
// allocates; the engine's hot path should pass a pooled pointer type instead.
type TargetFunc func(l Limit)

// TimeLimitExceeded calls f(l).
func (f TargetFunc) TimeLimitExceeded(l Limit) { f(l) }

// Tracker tracks the time limits of many concurrent runs in one min-heap,
// served by one goroutine and one timer between Start and Stop.
//
// A Tracker is safe for concurrent use. Runs may be tracked before Start and
// after Stop; their limits fire only while the Tracker is started (a limit
// that passed while it was stopped fires at once on the next Start).
type Tracker struct {
	mu         sync.Mutex
	cond       sync.Cond // on mu: a call in progress has finished
	resolution int64
	now        func() int64 // monotonic ns; tests substitute a fake clock

	entries []entry  // slab; Handle.id indexes it
	free    []uint32 // ids of unused entries
	heap    []uint32 // ids ordered by (deadline, seq)
	seq     uint64   // Track counter: FIFO among equal deadlines
	waiters int      // Done calls blocked in cond.Wait

	batch []firing // expire's scratch space (one expire at a time)

	// Driver state, guarded by mu.
	timer   *time.Timer // nil until the first Start
	armed   int64       // deadline the timer is set for; math.MaxInt64 = idle
	running bool
	stop    chan struct{}
	stopped chan struct{}
}

type entry struct {
	target   Target
	deadline int64 // key of the pending limit
	hard     int64 // hard deadline still to come after a soft one; 0 = none
	seq      uint64
	pos      int32 // index in heap; -1 when not in the heap
	gen      uint32
	stage    Limit // limit of the pending deadline; 0 when the entry is free
	firing   uint8 // calls in progress
}

type firing struct {
	target Target
	limit  Limit
	last   bool // the run's last limit: release the entry after the call
	id     uint32
	gen    uint32
}

// Handle identifies one tracked run. The zero Handle is valid: its Done does
// nothing. Handles are small values; copy them freely.
type Handle struct {
	t   *Tracker
	id  uint32
	gen uint32
}

// epoch anchors the monotonic clock; reading it at init starts nothing.
var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) }

// New returns a stopped Tracker whose deadlines are rounded up to multiples
// of resolution (1ms if resolution <= 0): limits fire up to one resolution
// late and never early. Task limits are usually whole seconds; a resolution
// of 10ms or more lets runs that start close together share wake-ups.
func New(resolution time.Duration) *Tracker {
	if resolution <= 0 {
		resolution = time.Millisecond
	}
	t := &Tracker{resolution: int64(resolution), now: monotonic, armed: math.MaxInt64}
	t.cond.L = &t.mu
	return t
}

// Track starts tracking a run with limits l that began now; target is told
// when a limit is reached. If l sets no limit, Track returns the zero Handle
// and tracks nothing. The caller must call Done on the returned Handle when
// the run ends, whether or not a limit fired.
func (t *Tracker) Track(l Limits, target Target) Handle {
	// Small enough to inline: a run without limits, the common case,
	// costs its caller no call here or in Done.
	if l.Soft <= 0 && l.Hard <= 0 {
		return Handle{}
	}
	return t.track(l, target)
}

func (t *Tracker) track(l Limits, target Target) Handle {
	if l.Soft >= l.Hard && l.Hard > 0 {
		l.Soft = 0 // the hard limit comes first; the soft one could never fire
	}
	now := t.now()
	soft, hard := t.deadline(now, l.Soft), t.deadline(now, l.Hard)

	t.mu.Lock()
	id := t.alloc()
	e := &t.entries[id]
	e.target = target
	e.seq = t.seq
	t.seq++
	if soft != 0 {
		e.stage, e.deadline, e.hard = Soft, soft, hard
	} else {
		e.stage, e.deadline, e.hard = Hard, hard, 0
	}
	t.push(id)
	if e.deadline < t.armed && t.running {
		t.arm(e.deadline, now)
	}
	h := Handle{t: t, id: id, gen: e.gen}
	t.mu.Unlock()
	return h
}

// deadline returns now+d rounded up to the resolution, saturating, or 0 when
// d sets no limit.
func (t *Tracker) deadline(now int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	r := t.resolution
	if int64(d) > math.MaxInt64-now-r {
		return math.MaxInt64 / r * r
	}
	return (now + int64(d) + r - 1) / r * r
}

// Done ends the run's tracking: limits that have not fired never will. If a
// Target call for this run is in progress, Done waits for it to return, so
// that once Done returns nothing for the run is running or will run. Done
// reports whether it stopped the run's last limit before it fired (like
// time.Timer.Stop): false if the hard limit (or a lone soft limit) already
// fired, if Done was already called, or for the zero Handle.
func (h Handle) Done() bool {
	if h.t == nil {
		return false
	}
	return h.done()
}

func (h Handle) done() bool {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &t.entries[h.id]
	for e.gen == h.gen && e.firing > 0 {
		t.waiters++
		t.cond.Wait()
		t.waiters--
		e = &t.entries[h.id] // the slab may have grown meanwhile
	}
	if e.gen != h.gen {
		return false
	}
	t.remove(e.pos)
	t.release(h.id)
	return true
}

// Len returns the number of runs being tracked.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries) - len(t.free)
}

// Start starts the goroutine that fires limits. Starting a started Tracker
// does nothing.
func (t *Tracker) Start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		return
	}
	if t.timer == nil {
		t.timer = time.NewTimer(time.Hour)
	}
	t.timer.Stop()
	t.running = true
	t.armed = math.MaxInt64
	t.stop, t.stopped = make(chan struct{}), make(chan struct{})
	if len(t.heap) > 0 {
		t.arm(t.entries[t.heap[0]].deadline, t.now())
	}
	go t.run(t.stop, t.stopped)
}

// Stop stops the goroutine and waits until it has exited, including any
// Target call in progress. Tracked runs stay tracked. Stopping a stopped
// Tracker does nothing. Stop must not be called from a Target.
func (t *Tracker) Stop() {
	t.mu.Lock()
	if !t.running {
		t.mu.Unlock()
		return
	}
	t.running = false
	t.timer.Stop()
	t.armed = math.MaxInt64
	stop, stopped := t.stop, t.stopped
	t.mu.Unlock()
	close(stop)
	<-stopped
}

func (t *Tracker) run(stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	for {
		select {
		case <-stop:
			return
		case <-t.timer.C:
			t.expire(t.now())
		}
	}
}

// arm sets the timer for deadline; mu held, t.running.
func (t *Tracker) arm(deadline, now int64) {
	t.armed = deadline
	t.timer.Reset(time.Duration(max(deadline-now, 0)))
}

// expire fires every limit due at now, in deadline order, and re-arms the
// timer. Only one goroutine may run expire at a time: the Tracker's own, or a
// test driving a stopped Tracker.
//
// Due limits are taken off the heap first; each call is then made with the
// entry marked as firing, and skipped if Done ended the run in between.
func (t *Tracker) expire(now int64) int {
	t.mu.Lock()
	batch := t.batch[:0]
	for len(t.heap) > 0 {
		id := t.heap[0]
		e := &t.entries[id]
		if e.deadline > now {
			break
		}
		f := firing{target: e.target, limit: e.stage, id: id, gen: e.gen}
		if e.stage == Soft && e.hard != 0 {
			e.stage, e.deadline, e.hard = Hard, e.hard, 0
			t.down(0)
		} else {
			f.last = true
			t.remove(0)
		}
		batch = append(batch, f)
	}
	t.mu.Unlock()

	fired := 0
	for i := range batch {
		f := &batch[i]
		t.mu.Lock()
		e := &t.entries[f.id]
		live := e.gen == f.gen
		if live {
			e.firing++
		}
		t.mu.Unlock()
		if live {
			f.target.TimeLimitExceeded(f.limit)
			fired++
			t.mu.Lock()
			e = &t.entries[f.id]
			e.firing--
			if f.last {
				t.release(f.id) // Done will find the run gone
			}
			if t.waiters > 0 {
				t.cond.Broadcast()
			}
			t.mu.Unlock()
		}
		f.target = nil
	}

	t.mu.Lock()
	t.batch = batch[:0]
	if t.running {
		t.armed = math.MaxInt64
		if len(t.heap) > 0 {
			t.arm(t.entries[t.heap[0]].deadline, t.now())
		}
	}
	t.mu.Unlock()
	return fired
}

// alloc returns the id of an unused entry; mu held.
func (t *Tracker) alloc() uint32 {
	if n := len(t.free); n > 0 {
		id := t.free[n-1]
		t.free = t.free[:n-1]
		return id
	}
	t.entries = append(t.entries, entry{pos: -1})
	return uint32(len(t.entries) - 1)
}

// release frees an entry that is out of the heap; mu held. Bumping gen makes
// every Handle to it stale.
func (t *Tracker) release(id uint32) {
	e := &t.entries[id]
	e.target = nil
	e.stage = 0
	e.gen++
	t.free = append(t.free, id)
}

func (t *Tracker) less(a, b uint32) bool {
	ea, eb := &t.entries[a], &t.entries[b]
	return ea.deadline < eb.deadline || ea.deadline == eb.deadline && ea.seq < eb.seq
}

func (t *Tracker) push(id uint32) {
	t.heap = append(t.heap, id)
	t.entries[id].pos = int32(len(t.heap) - 1)
	t.up(len(t.heap) - 1)
}

// remove takes the entry at heap index i out of the heap; i < 0 is a no-op.
func (t *Tracker) remove(i int32) {
	if i < 0 {
		return
	}
	last := len(t.heap) - 1
	id := t.heap[i]
	if int(i) != last {
		t.swap(int(i), last)
	}
	t.heap = t.heap[:last]
	t.entries[id].pos = -1
	if int(i) != last {
		t.down(int(i))
		t.up(int(i))
	}
}

func (t *Tracker) swap(i, j int) {
	h := t.heap
	h[i], h[j] = h[j], h[i]
	t.entries[h[i]].pos = int32(i)
	t.entries[h[j]].pos = int32(j)
}

func (t *Tracker) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(t.heap[i], t.heap[p]) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *Tracker) down(i int) {
	n := len(t.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && t.less(t.heap[r], t.heap[c]) {
			c = r
		}
		if !t.less(t.heap[c], t.heap[i]) {
			return
		}
		t.swap(i, c)
		i = c
	}
}
