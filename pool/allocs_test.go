//go:build !race

package pool

import (
	"sync"
	"testing"
)

func TestAllocsGoroutineSubmitAndRun(t *testing.T) {
	var wg sync.WaitGroup
	type job struct{ n int }
	p, err := NewGoroutine(Config{Concurrency: 2, QueueSize: 64}, func(_ *Slot, j *job) { j.n++; wg.Done() }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	jobs := make([]*job, 16)
	for i := range jobs {
		jobs[i] = &job{}
	}
	allocs := testing.AllocsPerRun(200, func() {
		wg.Add(len(jobs))
		if err := p.Submit(jobs...); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	})
	if allocs != 0 {
		t.Fatalf("Submit+run of 16 jobs: %v allocs, want 0", allocs)
	}
}
