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
