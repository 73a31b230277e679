//go:build !race

package engine

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestAllocsEngineMemoryNoop: publish -> fetch -> dispatch -> execute -> ack
// of a raw no-op task on the memory transport, results ignored, allocates
// nothing per task in steady state.
func TestAllocsEngineMemoryNoop(t *testing.T) {
	for _, pool := range []string{"goroutine", "solo"} {
		t.Run(pool, func(t *testing.T) {
			app := newApp(t, Config{})
			var done atomic.Int64
			RegisterRaw(app, "bench.noop", func(context.Context, *Task) error {
				done.Add(1)
				return nil
			}, TaskIgnoreResult(true))
			startWorker(t, app, WorkerConfig{Concurrency: 2, Pool: pool})
			ctx := context.Background()
			const perRun = 64
			var sent int64
			run := func() {
				for range perRun {
					if err := app.SendRaw(ctx, "bench.noop", nil, nil); err != nil {
						t.Fatal(err)
					}
				}
				sent += perRun
				deadline := time.Now().Add(10 * time.Second)
				for done.Load() < sent {
					if time.Now().After(deadline) {
						t.Fatalf("only %d of %d tasks ran", done.Load(), sent)
					}
					runtime.Gosched()
				}
			}
			for range 50 { // warm up pools, rings and slices
				run()
			}
			allocs := testing.AllocsPerRun(100, run)
			if perTask := allocs / perRun; perTask != 0 {
				t.Fatalf("%.3f allocations per task (%.1f per run of %d), want 0", perTask, allocs, perRun)
			}
		})
	}
}

// TestAllocsEngineMemoryTyped: the allocations of a typed round trip on the
// memory transport, Delay -> run -> store -> Get, for a Register2 task of
// two ints whose result is read after it is stored. What they are: the
// call's argument list and the boxing of arguments past 255 (Delay's
// ...any), the args list as an interface, the task id as a string, the
// AsyncResult, the decoding of one argument, the stored record and its
// key, the record as Get reads it, and the decoding of the result into
// an int. (The read results are forgotten, which allocates nothing.)
func TestAllocsEngineMemoryTyped(t *testing.T) {
	app := newApp(t, Config{})
	add := Register2(app, "bench.add", func(_ context.Context, x, y int) (int, error) { return x + y, nil })
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := context.Background()
	const perRun = 64
	results := make([]*AsyncResult[int], perRun)
	var sent int64
	run := func() {
		for i := range results {
			r, err := add.Delay(ctx, 1000+i, 1)
			if err != nil {
				t.Fatal(err)
			}
			results[i] = r
		}
		sent += perRun
		deadline := time.Now().Add(10 * time.Second)
		for w.Stats().Succeeded.Load() < sent {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d tasks ran", w.Stats().Succeeded.Load(), sent)
			}
			runtime.Gosched()
		}
		for i, r := range results {
			if v, err := r.Get(ctx); err != nil || v != 1000+i+1 {
				t.Fatalf("Get = %v, %v", v, err)
			}
			// Forgotten, so that the backend's map of records stays the
			// size it is rather than growing through the measured runs.
			if err := r.Forget(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 50 {
		run()
	}
	allocs := testing.AllocsPerRun(100, run)
	if perTask := allocs / perRun; perTask > 12 {
		t.Fatalf("%.3f allocations per task (%.1f per run of %d), want at most 12", perTask, allocs, perRun)
	}
}
