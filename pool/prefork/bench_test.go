package prefork

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/pool"
)

// BenchmarkNoop drives no-op tasks through child processes and reports
// tasks/s. The caller keeps a window of outstanding tasks, as the engine's
// prefetch does (4 per child slot). "unbatched" writes every frame with its
// own system call at both ends: the baseline that batched framing beats.
// "limits" gives every task a hard limit and watches the children's memory
// (one /proc read per batch of replies).
//
//	go test -run '^$' -bench Noop -benchtime 200000x ./pool/prefork/
func BenchmarkNoop(b *testing.B) {
	for _, bc := range []struct {
		procs, depth      int
		unbatched, limits bool
	}{
		{2, 1, false, false},
		{2, 1, false, true},
		{2, 16, true, false},
		{2, 16, false, false},
		{2, 16, false, true},
		{2, 64, false, false},
		{4, 64, false, false},
	} {
		name := fmt.Sprintf("procs=%d/depth=%d", bc.procs, bc.depth)
		if bc.unbatched {
			name += "/unbatched"
		}
		if bc.limits {
			name += "/limits"
		}
		b.Run(name, func(b *testing.B) {
			var env []string
			if bc.unbatched {
				unbatched = true
				defer func() { unbatched = false }()
				env = append(env, childUnbatched+"=1")
			}
			h := newHarness(b, env...)
			cfg := Config{Procs: bc.procs, PipelineDepth: bc.depth}
			req := Request{Payload: []byte("noop")}
			if bc.limits {
				cfg.MaxMemoryPerChild = 1 << 40
				req.HardLimit = time.Minute
			}
			p := h.pool(cfg)
			window := make(chan struct{}, 4*bc.procs*bc.depth)
			var wg sync.WaitGroup
			var failed error
			done := func(r Result) {
				if r.Err != nil && failed == nil {
					failed = r.Err
				}
				<-window
				wg.Done()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				window <- struct{}{}
				wg.Add(1)
				if err := p.Submit(req, done); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

// BenchmarkGoroutinePoolNoop is the same workload on the goroutine pool,
// for comparison in the same run.
func BenchmarkGoroutinePoolNoop(b *testing.B) {
	const procs = 2
	window := make(chan struct{}, 4*procs)
	var wg sync.WaitGroup
	g, err := pool.NewGoroutine(pool.Config{Concurrency: procs, Logger: quietLogger()},
		func(_ *pool.Slot, _ int) { <-window; wg.Done() }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		window <- struct{}{}
		wg.Add(1)
		if err := g.Submit(i); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
