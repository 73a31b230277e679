package pool

import (
	"bytes"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// TestGoroutineRunsEveryJobOnceInFIFOOrderPerExecutor: one executor runs
// the jobs in the order they were submitted, in batches of 1 to 7, while
// the run queue (3 asked for, not a power of two) wraps around and grows
// under it.
func TestGoroutineRunsEveryJobOnceInFIFOOrderPerExecutor(t *testing.T) {
	t.Parallel()
	const total = 2000
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	p, err := NewGoroutine(Config{Concurrency: 1, QueueSize: 3}, func(_ *Slot, j int) {
		mu.Lock()
		got = append(got, j)
		mu.Unlock()
		wg.Done()
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(total)
	for next, size := 0, 1; next < total; size = size%7 + 1 {
		batch := make([]int, 0, size)
		for ; len(batch) < size && next < total; next++ {
			batch = append(batch, next)
		}
		if err := p.Submit(batch...); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if left := p.Stop(); len(left) != 0 {
		t.Fatalf("Stop returned %d jobs, want 0", len(left))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("job %d ran at position %d: one executor must run in FIFO order", v, i)
		}
	}
}

func TestGoroutineConcurrencyIsTheNumberOfExecutors(t *testing.T) {
	t.Parallel()
	const n = 4
	release := make(chan struct{})
	var running, peak atomic.Int32
	var started sync.WaitGroup
	started.Add(n)
	p, err := NewGoroutine(Config{Concurrency: n, QueueSize: 16}, func(_ *Slot, _ int) {
		c := running.Add(1)
		for {
			old := peak.Load()
			if c <= old || peak.CompareAndSwap(old, c) {
				break
			}
		}
		started.Done()
		<-release
		running.Add(-1)
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := p.Submit(i); err != nil {
			t.Fatal(err)
		}
	}
	started.Wait() // all n run at once
	if err := p.Submit(99, 100); err != nil {
		t.Fatal(err)
	}
	if q := p.Queued(); q != 2 {
		t.Fatalf("queued = %d, want 2 while every executor is busy", q)
	}
	started.Add(2)
	close(release)
	started.Wait()
	p.Stop()
	if peak.Load() != n {
		t.Fatalf("peak concurrency %d, want %d", peak.Load(), n)
	}
}

// Executors are woken one at a time, each by the one before when it took
// a job and left more behind: a batch of jobs that block must still reach
// every executor.
func TestGoroutineOneBatchOfBlockingJobsReachesEveryExecutor(t *testing.T) {
	t.Parallel()
	const n = 16
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	p, err := NewGoroutine(Config{Concurrency: n}, func(_ *Slot, _ int) {
		started.Done()
		<-release
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	defer close(release)
	time.Sleep(20 * time.Millisecond) // let the executors park
	jobs := make([]int, n)
	if err := p.Submit(jobs...); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d jobs still queued: not every executor was woken", p.Queued())
	}
}

func TestGoroutineRunQueueGrowsBeyondItsInitialSize(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	var wg sync.WaitGroup
	p, err := NewGoroutine(Config{Concurrency: 1, QueueSize: 2}, func(_ *Slot, _ int) { <-block; wg.Done() }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(10)
	for i := range 10 {
		if err := p.Submit(i); err != nil {
			t.Fatal(err)
		}
	}
	if q := p.Queued(); q < 9 {
		t.Fatalf("queued %d, want >= 9 with the only executor blocked", q)
	}
	close(block)
	wg.Wait()
	p.Stop()
}

func TestMaxTasksPerChildRecyclesAfterExactlyNOnFreshGoroutines(t *testing.T) {
	t.Parallel()
	const perChild, jobs = 5, 23
	var mu sync.Mutex
	perSlot := map[int]int{}
	gids := map[int]uint64{} // slot ID -> goroutine ID
	var wg sync.WaitGroup
	wg.Add(jobs)
	p, err := NewGoroutine(Config{Concurrency: 1, MaxTasksPerChild: perChild, QueueSize: jobs}, func(s *Slot, _ int) {
		mu.Lock()
		perSlot[s.ID]++
		gid := goroutineID()
		if old, ok := gids[s.ID]; ok && old != gid {
			t.Errorf("slot %d moved from goroutine %d to %d", s.ID, old, gid)
		}
		gids[s.ID] = gid
		mu.Unlock()
		wg.Done()
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range jobs {
		if err := p.Submit(i); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	p.Stop()
	ids := make([]int, 0, len(perSlot))
	for id := range perSlot {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) != 5 { // 5+5+5+5+3
		t.Fatalf("slots used: %v, want 5", perSlot)
	}
	for _, id := range ids[:4] {
		if perSlot[id] != perChild {
			t.Fatalf("slot %d ran %d jobs, want exactly %d", id, perSlot[id], perChild)
		}
	}
	seen := map[uint64]bool{}
	for _, g := range gids {
		if seen[g] {
			t.Fatalf("a recycled executor reused goroutine %d; want a fresh goroutine per child", g)
		}
		seen[g] = true
	}
}

func TestStopReturnsUnstartedJobsAndWaitsForRunningOnes(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	p, err := NewGoroutine(Config{Concurrency: 1, QueueSize: 8}, func(_ *Slot, j int) {
		if j == 0 {
			close(started)
			<-release
			finished.Store(true)
		}
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(0, 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	<-started
	go func() { time.Sleep(10 * time.Millisecond); close(release) }()
	left := p.Stop()
	if !finished.Load() {
		t.Fatal("Stop returned before the running job finished")
	}
	if !slices.Equal(left, []int{1, 2, 3}) {
		t.Fatalf("Stop returned %v, want [1 2 3]", left)
	}
	if err := p.Submit(9); err != ErrStopped {
		t.Fatalf("Submit after Stop: %v, want ErrStopped", err)
	}
}

func TestAbandonReplacesAStuckExecutor(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	var stuckSlot atomic.Pointer[Slot]
	var wg sync.WaitGroup
	var p *Goroutine[int]
	p, err := NewGoroutine(Config{Concurrency: 1, QueueSize: 8}, func(s *Slot, j int) {
		if j == 0 {
			stuckSlot.Store(s)
			p.Abandon(s) // as the hard time limit would, from another goroutine
			<-stuck
			return
		}
		wg.Done()
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(3)
	if err := p.Submit(0, 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // jobs 1-3 ran although the only original executor is stuck
	if p.Size() != 1 {
		t.Fatalf("size %d, want 1", p.Size())
	}
	p.Stop() // does not wait for the abandoned goroutine
	close(stuck)
}

func TestResizeGrowsAndShrinks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	slots := map[int]bool{}
	var barrier, done sync.WaitGroup
	barrier.Add(4)
	done.Add(4)
	p, err := NewGoroutine(Config{Concurrency: 1, QueueSize: 64}, func(s *Slot, _ int) {
		mu.Lock()
		slots[s.ID] = true
		mu.Unlock()
		barrier.Done()
		barrier.Wait() // only returns once 4 executors hold a job at the same time
		done.Done()
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(4); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := p.Submit(i); err != nil {
			t.Fatal(err)
		}
	}
	done.Wait()
	if len(slots) != 4 {
		t.Fatalf("after growing to 4, %d executors ran the 4 jobs", len(slots))
	}
	if err := p.Resize(1); err != nil {
		t.Fatal(err)
	}
	if p.Size() != 1 {
		t.Fatalf("size %d after shrink", p.Size())
	}
	if err := p.Resize(0); err == nil {
		t.Fatal("Resize(0) must fail")
	}
	p.Stop()
}

func TestSoloRunsInlineAndCallsIdle(t *testing.T) {
	t.Parallel()
	var got []int
	idles := 0
	p := NewSolo(func(_ *Slot, j int) { got = append(got, j) }, func(*Slot) { idles++ }, nil)
	if err := p.Submit(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{1, 2, 3}) || idles != 1 {
		t.Fatalf("got %v idles %d", got, idles)
	}
}
