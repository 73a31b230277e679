package prefork

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/celerity-go/celerity/timelimit"
)

// ErrTimeLimitExceeded is the error of a task whose child was killed at the
// task's hard time limit (Celery's TimeLimitExceeded). It is the same value
// as timelimit.ErrTimeLimitExceeded.
var ErrTimeLimitExceeded = timelimit.ErrTimeLimitExceeded

// ErrChildLost is the error (wrapped, with the child's pid, exit status and
// the first line of a panic if there was one) of a task whose child died
// while running it: a crash, an out-of-memory kill, a kill -9 from outside,
// or a protocol violation. Celery calls it WorkerLostError.
var ErrChildLost = errors.New("prefork: child lost")

// ErrStopped is returned by Submit and Resize once Stop has begun, and is
// the error of tasks that Stop returns unstarted.
var ErrStopped = errors.New("prefork: pool stopped")

// ErrSkipped is the error of a task whose Request.Skip said not to send it.
var ErrSkipped = errors.New("prefork: task skipped")

// Config configures a Pool. The zero value of each field but Command is a
// working default.
type Config struct {
	// Procs is the number of children, the pool's concurrency (Celery's
	// --concurrency); default runtime.NumCPU().
	Procs int
	// Command returns a new, unstarted command that runs a child: a
	// program that calls ServeChild when IsChild reports true, typically
	// the running binary (os.Executable) with the arguments it needs to
	// build its task registry. Required.
	//
	// The pool adds its descriptors to ExtraFiles and EnvChild to Env (the
	// parent's environment if Env is nil), and sets Pdeathsig to SIGKILL
	// unless SysProcAttr sets one, so that children die with the parent.
	// Stdin is left alone (nil: /dev/null). Stdout nil becomes the
	// parent's stdout; Stderr nil becomes Config.Stderr, whose last lines
	// the pool keeps to explain why a child died.
	Command func() *exec.Cmd
	// PipelineDepth is how many tasks a child may hold at once: the one it
	// runs and the ones queued behind it in its pipe. 1 (the default) is
	// Celery's -Ofair: a task goes to a child only when it is idle, so no
	// task waits behind a long one. A few more let tiny tasks travel and
	// come back in batches, one write for many tasks, at the price of
	// waiting behind their child's current task.
	PipelineDepth int
	// MaxTasksPerChild recycles a child after it has run exactly this many
	// tasks (Celery's worker_max_tasks_per_child); 0 = never.
	MaxTasksPerChild int
	// MaxMemoryPerChild recycles a child after the task during which its
	// resident memory (VmRSS, in KiB) went above this
	// (worker_max_memory_per_child); 0 = never.
	MaxMemoryPerChild int64
	// MaxFrame bounds a request or reply payload; default DefaultMaxFrame.
	MaxFrame int
	// StartTimeout is how long a new child may take to greet the parent
	// before it is killed and retried; default 30s.
	StartTimeout time.Duration
	// Stderr receives children's stderr when Command leaves it nil;
	// default os.Stderr.
	Stderr io.Writer
	// Logger receives child deaths, recycling and spawn failures; nil =
	// slog.Default().
	Logger *slog.Logger
}

// validate fills defaults and reports the first bad field.
func (c *Config) validate() error {
	if c.Command == nil {
		return errors.New("prefork: Config.Command is nil")
	}
	if c.Procs == 0 {
		c.Procs = runtime.NumCPU()
	}
	if c.Procs < 1 {
		return fmt.Errorf("prefork: Config.Procs %d < 1", c.Procs)
	}
	if c.PipelineDepth == 0 {
		c.PipelineDepth = 1
	}
	if c.PipelineDepth < 1 {
		return fmt.Errorf("prefork: Config.PipelineDepth %d < 1", c.PipelineDepth)
	}
	if c.MaxTasksPerChild < 0 {
		return fmt.Errorf("prefork: Config.MaxTasksPerChild %d < 0", c.MaxTasksPerChild)
	}
	if c.MaxMemoryPerChild < 0 {
		return fmt.Errorf("prefork: Config.MaxMemoryPerChild %d < 0", c.MaxMemoryPerChild)
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.MaxFrame < 0 || c.MaxFrame > 1<<31-1 {
		return fmt.Errorf("prefork: Config.MaxFrame %d out of range", c.MaxFrame)
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("prefork: Config.StartTimeout %v < 0", c.StartTimeout)
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Request is one task for a child.
type Request struct {
	// Payload is what the child's Handler receives. The pool holds on to
	// it until the task's done function is called: do not modify it
	// before then.
	Payload []byte
	// HardLimit is the task's hard time limit (0 = none): at the limit its
	// child is killed and the task fails with ErrTimeLimitExceeded.
	HardLimit time.Duration
	// Started, if not nil, is called when the pool sees a child start
	// the task, which is when its HardLimit clock starts: as it is sent to
	// an idle child, or as the reply of the task before it arrives. A task
	// whose reply arrives together with its predecessor's is never seen to
	// start; one whose child died before it began may be seen again on
	// another child. Started runs with the pool's lock held: it must be
	// quick and must not call the pool.
	Started func()
	// Skip, if not nil, is asked as the task leaves the pool's queue for a
	// child: true drops it unsent, and its done function gets ErrSkipped
	// (Celery's pool does not write a job revoked meanwhile to a child).
	// Skip runs with the pool's lock held: it must be quick and must not
	// call the pool.
	Skip func() bool
}

// Result is the outcome of a task.
type Result struct {
	// Payload is the child's reply: a view into the pool's read buffer,
	// valid only until the done function returns. Nil when Err is set.
	Payload []byte
	// Err is nil, or wraps ErrTimeLimitExceeded, ErrChildLost or
	// ErrStopped.
	Err error
}

// task is a submitted request and its completion function.
type task struct {
	req  Request
	done func(Result)
}

// Pool states.
const (
	stateNew = iota
	stateRunning
	stateStopping
	stateStopped
)

// Pool runs tasks in child processes. Submit, Resize, Size, Load, Stats and
// Stop are safe for concurrent use.
//
// Lock order: Pool.mu, then the timelimit Tracker's lock (Track and Done
// are called with mu held). Tracker callbacks (child.TimeLimitExceeded)
// take no pool lock.
type Pool struct {
	cfg     Config
	log     *slog.Logger
	tracker *timelimit.Tracker
	spawnCh chan spawnReq
	stopCh  chan struct{} // closed when Stop begins
	stopped chan struct{} // closed when Stop has finished
	slotsWG sync.WaitGroup

	mu       sync.Mutex
	state    int
	hard     bool // Stop's context ended: kill, do not wait
	queue    taskRing
	hungry   childList // ready children with room for more tasks
	slots    []*slot   // active slots: len(slots) == want while running
	children map[*child]struct{}
	want     int
	load     int    // tasks submitted and not yet done
	skipped  []task // dropped by Request.Skip, done not yet called
	nextSlot int
	stats    Stats
}

// Stats counts what a Pool did. Read it with Pool.Stats.
type Stats struct {
	Children  int    // child processes alive now, retiring ones included
	Spawned   uint64 // child processes started
	Recycled  uint64 // children retired at MaxTasksPerChild or MaxMemoryPerChild
	TimeLimit uint64 // children killed at a task's hard time limit
	Lost      uint64 // children that died unexpectedly or broke the protocol
	Queued    int    // tasks waiting for a child
	InFlight  int    // tasks sent to a child and not yet done
}

// New validates cfg and returns a pool that is not started: Submit queues
// tasks, Start starts the children.
func New(cfg Config) (*Pool, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Pool{
		cfg:      cfg,
		log:      cfg.Logger,
		tracker:  timelimit.New(limitResolution),
		spawnCh:  make(chan spawnReq),
		stopCh:   make(chan struct{}),
		stopped:  make(chan struct{}),
		children: make(map[*child]struct{}),
		want:     cfg.Procs,
	}, nil
}

// limitResolution is the granularity of hard time limits: a child is
// killed at most this long after its task's limit, never before.
const limitResolution = 5 * time.Millisecond

// Start starts the children and waits until each has greeted the parent.
// If one cannot start (the command fails, or exits or writes something
// else before greeting) or ctx ends first, Start stops the pool and
// returns the error.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.state != stateNew {
		p.mu.Unlock()
		return errors.New("prefork: Start called twice, or after Stop")
	}
	p.state = stateRunning
	p.tracker.Start()
	go p.spawner()
	first := make([]chan error, p.want)
	for i := range first {
		first[i] = make(chan error, 1)
		p.addSlotLocked(first[i])
	}
	p.mu.Unlock()

	var err error
	for _, ch := range first {
		select {
		case err = <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("prefork: start: %w", context.Cause(ctx))
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		stop, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.Stop(stop)
		return err
	}
	return nil
}

// Submit queues a task. It never blocks: the task goes to an idle child at
// once if there is one, or waits in the pool's queue (the caller bounds how
// many tasks it has outstanding). done is called exactly once with the
// task's result, from a pool goroutine (or from Stop's, for tasks Stop
// returns unstarted); it must be quick, may call Submit, and must not call
// Stop (Stop waits for the goroutine that runs it). A func value
// built per task allocates; the engine passes one stored in its pooled
// per-task state.
//
// Submit returns ErrStopped once Stop has begun, and an error wrapping
// ErrFrameTooLarge for a payload over the frame limit; done is not called
// then.
func (p *Pool) Submit(req Request, done func(Result)) error {
	if done == nil {
		return errors.New("prefork: Submit: done is nil")
	}
	if len(req.Payload) > p.cfg.MaxFrame {
		return fmt.Errorf("%w: payload of %d bytes exceeds the limit of %d", ErrFrameTooLarge, len(req.Payload), p.cfg.MaxFrame)
	}
	p.mu.Lock()
	if p.state >= stateStopping {
		p.mu.Unlock()
		return ErrStopped
	}
	p.queue.push(task{req: req, done: done})
	p.load++
	p.dispatchLocked()
	p.unlockSettlingSkipped()
	return nil
}

// unlockSettlingSkipped releases p.mu and calls the done function of the
// tasks Request.Skip dropped meanwhile: never with the lock held, since
// done may call Submit.
func (p *Pool) unlockSettlingSkipped() {
	skipped := p.skipped
	p.skipped = nil
	p.mu.Unlock()
	for _, t := range skipped {
		t.done(Result{Err: ErrSkipped})
	}
}

// Size returns the number of children the pool keeps (Procs, or the last
// Resize).
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.want
}

// Load returns the number of tasks submitted and not yet done: queued and
// in flight. An Autoscaler may use it as its load.
func (p *Pool) Load() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.load
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Children = len(p.children)
	s.Queued = p.queue.n
	s.InFlight = p.load - p.queue.n
	return s
}

// Resize sets the number of children (Celery's pool_grow / pool_shrink and
// autoscale). Growing starts children at once. Shrinking retires children,
// idle ones first: a retiring child takes no new task and exits when the
// ones it holds are done.
func (p *Pool) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("prefork: size %d < 1", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state >= stateStopping {
		return ErrStopped
	}
	p.want = n
	if p.state == stateNew {
		return nil // Start creates the slots
	}
	for len(p.slots) < n {
		p.addSlotLocked(nil)
	}
	for len(p.slots) > n {
		i := p.shrinkCandidateLocked()
		s := p.slots[i]
		p.slots = append(p.slots[:i], p.slots[i+1:]...)
		s.removed = true
		if c := s.child; c != nil {
			p.retireLocked(c)
		}
		s.wakeUp()
	}
	return nil
}

// shrinkCandidateLocked returns the index of the slot whose removal costs
// least: no child, then a child not ready yet, then the one holding the
// fewest tasks (newest first among equals).
func (p *Pool) shrinkCandidateLocked() int {
	best, bestCost := 0, int(^uint(0)>>1)
	for i, s := range p.slots {
		cost := 0
		switch c := s.child; {
		case c == nil:
		case !c.ready:
			cost = 1
		default:
			cost = 2 + int(c.assigned-c.answered)
		}
		if cost <= bestCost {
			best, bestCost = i, cost
		}
	}
	return best
}

// Stop stops the pool. Submit fails from now on; queued tasks that no child
// has taken are returned at once through their done functions with
// ErrStopped. Children finish the tasks they hold (a soft stop) and exit.
// If ctx ends first, the remaining children are killed: the task each was
// running fails with ErrChildLost, the ones queued behind it with
// ErrStopped, and Stop returns ctx's error. Stop returns when every child
// has exited and been reaped. Calling Stop again waits for the first call.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	switch p.state {
	case stateStopping, stateStopped:
		p.mu.Unlock()
		select {
		case <-p.stopped:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("prefork: stop: %w", context.Cause(ctx))
		}
	}
	started := p.state == stateRunning
	p.state = stateStopping
	close(p.stopCh)
	var left []task
	for p.queue.n > 0 {
		left = append(left, p.queue.pop())
	}
	p.load -= len(left)
	for c := range p.children {
		p.retireLocked(c)
	}
	for _, s := range p.slots {
		s.wakeUp()
	}
	p.mu.Unlock()

	for _, t := range left {
		t.done(Result{Err: ErrStopped})
	}

	var err error
	if started {
		all := make(chan struct{})
		go func() {
			p.slotsWG.Wait()
			close(all)
		}()
		select {
		case <-all:
		case <-ctx.Done():
			err = fmt.Errorf("prefork: stop: %w", context.Cause(ctx))
			p.mu.Lock()
			p.hard = true
			for c := range p.children {
				c.kill("pool stopped")
			}
			p.mu.Unlock()
			<-all
		}
		p.tracker.Stop()
		close(p.spawnCh)
	}
	p.mu.Lock()
	p.state = stateStopped
	p.mu.Unlock()
	close(p.stopped)
	return err
}

// dispatchLocked hands queued tasks to ready children with room, round
// robin, one task per child per turn. p.mu is held.
func (p *Pool) dispatchLocked() {
	for p.queue.n > 0 {
		c := p.hungry.front()
		if c == nil {
			return
		}
		p.hungry.remove(c)
		p.assignLocked(c)
		if c.hasRoomLocked() {
			p.hungry.pushBack(c)
		}
	}
}

// nextLocked pops the oldest queued task that Request.Skip does not drop,
// moving the dropped ones to p.skipped; false when none is left. p.mu is
// held.
func (p *Pool) nextLocked() (task, bool) {
	for p.queue.n > 0 {
		t := p.queue.pop()
		if t.req.Skip == nil || !t.req.Skip() {
			return t, true
		}
		p.load--
		p.skipped = append(p.skipped, t)
	}
	return task{}, false
}

// assignLocked gives c the oldest queued task that is not skipped, if
// any. p.mu is held; c is ready, not retiring and has room.
func (p *Pool) assignLocked(c *child) {
	t, ok := p.nextLocked()
	if !ok {
		return
	}
	c.assigned++
	c.ring[(c.assigned-1)%uint64(len(c.ring))] = t
	if c.assigned == c.answered+1 {
		c.trackHeadLocked() // the child was idle: this task starts now
	}
	if max := p.cfg.MaxTasksPerChild; max > 0 && c.assigned >= uint64(max) {
		c.retiring = true
		p.stats.Recycled++
	}
	c.kickWriter()
}

// retireLocked stops giving c tasks and lets its writer close the request
// pipe once everything assigned is written. p.mu is held.
func (p *Pool) retireLocked(c *child) {
	c.retiring = true
	p.hungry.remove(c)
	c.kickWriter()
}

// addSlotLocked starts a slot goroutine. p.mu is held.
func (p *Pool) addSlotLocked(first chan error) {
	p.nextSlot++
	s := &slot{id: p.nextSlot, wake: make(chan struct{}, 1), first: first}
	p.slots = append(p.slots, s)
	p.slotsWG.Add(1)
	go p.runSlot(s)
}

// taskRing is a growable FIFO of tasks.
type taskRing struct {
	buf  []task
	head int
	n    int
}

func (r *taskRing) push(t task) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = t
	r.n++
}

// pushFront puts t before every queued task.
func (r *taskRing) pushFront(t task) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = t
	r.n++
}

func (r *taskRing) pop() task {
	t := r.buf[r.head]
	r.buf[r.head] = task{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return t
}

func (r *taskRing) grow() {
	buf := make([]task, max(16, 2*len(r.buf)))
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

// childList is an intrusive doubly linked list of children.
type childList struct {
	head, tail *child
}

func (l *childList) front() *child { return l.head }

func (l *childList) pushBack(c *child) {
	if c.listed {
		return
	}
	c.listed = true
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *childList) remove(c *child) {
	if !c.listed {
		return
	}
	c.listed = false
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}
