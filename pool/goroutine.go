package pool

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/panjf2000/ants/v2"
)

// ErrStopped is returned by Submit after Stop.
var ErrStopped = errors.New("pool: stopped")

// Config configures a Goroutine pool.
type Config struct {
	// Concurrency is the number of executors (default runtime.NumCPU()).
	Concurrency int
	// MaxTasksPerChild ends an executor after this many jobs and starts a
	// fresh goroutine in its place; 0 = never.
	MaxTasksPerChild int
	// QueueSize is the initial run queue capacity (default 4 x Concurrency,
	// rounded up to a power of two).
	// The queue grows when needed: the caller bounds what it submits (the
	// worker's prefetch window), the pool does not apply back-pressure.
	QueueSize int
	// Logger receives panics recovered from jobs; nil = slog.Default().
	Logger *slog.Logger
}

// Slot is one executor's identity and private state. It is owned by the
// goroutine running it; State is set by the pool's init function and used
// only from that goroutine.
type Slot struct {
	// ID numbers slots from 1 in order of creation (a replacement gets a new ID).
	ID int
	// Tasks counts the jobs this slot has run.
	Tasks int
	// State is the caller's per-slot state (set by the init function).
	State any

	abandoned bool // Abandon was called; set under Goroutine.mu
	gone      bool // no longer counted in live and exited; set under Goroutine.mu
}

// Goroutine is a pool of executor goroutines pulling jobs of type J from
// one bounded FIFO run queue. Submit, Stop, Resize and Abandon are safe for
// concurrent use.
type Goroutine[J any] struct {
	run  func(*Slot, J)
	idle func(*Slot)
	init func(*Slot)
	max  int
	log  *slog.Logger

	ants *ants.Pool

	mu      sync.Mutex
	cond    sync.Cond
	ring    []J
	head    int  // index of the oldest job
	n       int  // jobs queued
	want    int  // executors wanted
	live    int  // executors running (not abandoned, not retiring)
	waiting int  // executors blocked in cond.Wait
	waking  bool // an executor was signalled and has not run yet
	nextID  int
	stopped bool
	exited  sync.WaitGroup
}

// NewGoroutine returns a started pool. run executes one job; idle, if not
// nil, is called by an executor before it waits for work (the place to flush
// batched acknowledgements); init, if not nil, sets up a new slot's State.
func NewGoroutine[J any](cfg Config, run func(*Slot, J), idle, init func(*Slot)) (*Goroutine[J], error) {
	if run == nil {
		return nil, errors.New("pool: run function is nil")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = runtime.NumCPU()
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4 * cfg.Concurrency
	}
	if cfg.MaxTasksPerChild < 0 {
		return nil, fmt.Errorf("pool: MaxTasksPerChild %d < 0", cfg.MaxTasksPerChild)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Unbounded ants capacity: the executor count is ours to manage
	// (abandoned executors still occupy a goroutine until their job returns).
	ap, err := ants.NewPool(-1, ants.WithPanicHandler(func(p any) {
		cfg.Logger.Error("pool: executor panicked", "panic", p)
	}))
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	p := &Goroutine[J]{
		run: run, idle: idle, init: init, max: cfg.MaxTasksPerChild, log: cfg.Logger,
		ants: ap, ring: make([]J, ringSize(cfg.QueueSize)), want: cfg.Concurrency,
	}
	p.cond.L = &p.mu
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.live < p.want {
		if err := p.spawnLocked(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// spawnLocked starts one executor. p.mu is held.
func (p *Goroutine[J]) spawnLocked() error {
	p.nextID++
	s := &Slot{ID: p.nextID}
	p.live++
	p.exited.Add(1)
	if err := p.ants.Submit(func() { p.loop(s) }); err != nil {
		p.live--
		p.exited.Done()
		return fmt.Errorf("pool: start executor: %w", err)
	}
	return nil
}

// Submit queues jobs in order. It never blocks; it returns ErrStopped
// after Stop.
func (p *Goroutine[J]) Submit(jobs ...J) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return ErrStopped
	}
	if p.n+len(jobs) > len(p.ring) {
		p.growLocked(p.n + len(jobs))
	}
	for _, j := range jobs {
		p.ring[p.at(p.n)] = j
		p.n++
	}
	wake := p.wakeLocked()
	p.mu.Unlock()
	if wake {
		p.cond.Signal()
	}
	return nil
}

// wakeLocked reports whether to signal a waiting executor: when jobs are
// queued and no executor signalled earlier is still on its way. One
// wake-up at a time, renewed by every pop that leaves jobs behind, brings
// in as many executors as the jobs keep busy: executors that block in
// their jobs let the woken ones run, each of which wakes the next, while
// jobs that finish fast are drained by the executors already running.
// Waking one executor per queued job instead put most of them straight
// back to sleep (BenchmarkEngineMemoryNoop in engine, c=64: 206 -> 184
// ns/task, median of 21 interleaved runs; parks per task 0.24 -> 0.007).
// p.mu is held.
func (p *Goroutine[J]) wakeLocked() bool {
	if p.n == 0 || p.waiting == 0 || p.waking {
		return false
	}
	p.waking = true
	return true
}

// ringSize returns the power of two at least n (and at least 1) that the
// run queue's length is, so that positions wrap with a mask, not a
// division.
func ringSize(n int) int {
	size := 1
	for size < n {
		size *= 2
	}
	return size
}

// at returns the index of the i-th queued job. p.mu is held.
func (p *Goroutine[J]) at(i int) int { return (p.head + i) & (len(p.ring) - 1) }

// growLocked makes room for at least need jobs. p.mu is held.
func (p *Goroutine[J]) growLocked(need int) {
	ring := make([]J, ringSize(max(need, 2*len(p.ring))))
	for i := range p.n {
		ring[i] = p.ring[p.at(i)]
	}
	p.ring, p.head = ring, 0
}

// Queued returns the number of jobs waiting for an executor.
func (p *Goroutine[J]) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Each calls fn for every queued job, oldest first, with the pool locked:
// fn must be quick and must not call the pool.
func (p *Goroutine[J]) Each(fn func(J)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.n {
		fn(p.ring[p.at(i)])
	}
}

// Size returns the number of executors the pool keeps running.
func (p *Goroutine[J]) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.want
}

// Resize sets the number of executors (Celery's pool_grow/pool_shrink and
// autoscale). Surplus executors exit after their current job.
func (p *Goroutine[J]) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("pool: size %d < 1", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrStopped
	}
	p.want = n
	for p.live < p.want {
		if err := p.spawnLocked(); err != nil {
			return err
		}
	}
	p.cond.Broadcast() // surplus executors notice and leave
	return nil
}

// Abandon gives s's place to a new executor at once. s's goroutine, stuck
// in a job that overran its hard limit, exits when (if ever) that job
// returns. Abandoning twice is harmless.
func (p *Goroutine[J]) Abandon(s *Slot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.abandoned || s.gone {
		return
	}
	s.abandoned = true
	p.leaveLocked(s)
	if !p.stopped && p.live < p.want {
		if err := p.spawnLocked(); err != nil {
			p.log.Error("pool: replacing abandoned executor", "err", err)
		}
	}
}

// Stop stops taking jobs, lets every executor finish its current job, and
// returns the jobs that were queued but not started, oldest first. It waits
// for executors, not for abandoned goroutines still stuck in a job.
func (p *Goroutine[J]) Stop() []J {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	left := make([]J, 0, p.n)
	var zero J
	for p.n > 0 {
		left = append(left, p.ring[p.head])
		p.ring[p.head] = zero
		p.head = p.at(1)
		p.n--
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.exited.Wait()
	p.ants.Release()
	return left
}

// loop is one executor: pop a job, run it, repeat. It leaves when the pool
// stops, shrinks below it, abandons it, or it reaches MaxTasksPerChild.
func (p *Goroutine[J]) loop(s *Slot) {
	if p.init != nil {
		p.init(s)
	}
	var zero J
	for {
		p.mu.Lock()
		for p.n == 0 && !p.leavingLocked(s) {
			p.mu.Unlock()
			if p.idle != nil {
				p.idle(s)
			}
			// No spinning here: yielding a few times while watching the
			// queue before parking was measured slower
			// (BenchmarkEngineMemoryNoop in engine: c=2 431 -> 365,
			// c=64 269 -> 253 ns/task without it). Each yield is a trip
			// through the scheduler's global queue, which also moves
			// executors between processors.
			p.mu.Lock()
			if p.n > 0 || p.leavingLocked(s) {
				break
			}
			p.waiting++
			p.cond.Wait()
			p.waiting--
			p.waking = false
		}
		if p.leavingLocked(s) {
			p.mu.Unlock()
			if p.idle != nil {
				p.idle(s)
			}
			p.mu.Lock()
			p.leaveLocked(s)
			wake := p.wakeLocked() // it may have been the one woken for the queued jobs
			p.mu.Unlock()
			if wake {
				p.cond.Signal()
			}
			return
		}
		j := p.ring[p.head]
		p.ring[p.head] = zero
		p.head = p.at(1)
		p.n--
		wake := p.wakeLocked()
		p.mu.Unlock()
		if wake {
			p.cond.Signal()
		}

		p.run(s, j)
		s.Tasks++

		if p.max > 0 && s.Tasks >= p.max {
			p.recycle(s)
			return
		}
	}
}

// leavingLocked reports whether s must exit. p.mu is held.
func (p *Goroutine[J]) leavingLocked(s *Slot) bool {
	return p.stopped || s.abandoned || p.live > p.want
}

// leaveLocked stops counting s as a live executor, once. p.mu is held.
func (p *Goroutine[J]) leaveLocked(s *Slot) {
	if s.gone {
		return
	}
	s.gone = true
	p.live--
	p.exited.Done()
}

// recycle replaces s by a fresh executor and ends the current goroutine
// with runtime.Goexit, so that ants drops it instead of reusing it.
func (p *Goroutine[J]) recycle(s *Slot) {
	if p.idle != nil {
		p.idle(s)
	}
	p.mu.Lock()
	p.leaveLocked(s)
	if !p.stopped && p.live < p.want {
		if err := p.spawnLocked(); err != nil {
			p.log.Error("pool: recycling executor", "err", err)
		}
	}
	p.mu.Unlock()
	runtime.Goexit()
}
