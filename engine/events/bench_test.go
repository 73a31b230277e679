package events_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/engine/events"
)

func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkWorkerTaskEvents measures what task events cost a worker: raw
// no-op tasks through the memory transport without a dispatcher ("none"),
// with one attached but task events off (a worker without -E: heartbeats
// only), and with every task's three events sent to an in-process bus.
func BenchmarkWorkerTaskEvents(b *testing.B) {
	for _, mode := range []string{"none", "off", "on"} {
		for _, c := range []int{2, 64} {
			b.Run(fmt.Sprintf("events=%s/c=%d", mode, c), func(b *testing.B) {
				app := engine.MustNew(engine.Config{Hostname: "bench@host"})
				defer app.Close()
				var done atomic.Int64
				engine.RegisterRaw(app, "bench.noop", func(context.Context, *engine.Task) error {
					done.Add(1)
					return nil
				}, engine.TaskIgnoreResult(true))
				var d *events.Dispatcher
				if mode != "none" { // "off": attached, task events disabled (a worker without -E)
					d = events.New(control.NewMemoryBus(), events.Options{TaskEvents: mode == "on", Logger: quiet()})
					d.Attach(app)
					d.Start()
				}
				w, err := app.Worker(engine.WorkerConfig{Concurrency: c})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				stopped := make(chan struct{})
				go func() { w.Run(ctx); close(stopped) }()
				b.ReportAllocs()
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := range b.N {
					if err := app.SendRaw(ctx, "bench.noop", nil, nil); err != nil {
						b.Fatal(err)
					}
					for int64(i)-done.Load() > 4096 {
						runtime.Gosched()
					}
				}
				for done.Load() < int64(b.N) {
					runtime.Gosched()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/task")
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/task")
				cancel()
				<-stopped
				if d != nil {
					d.Close()
					st := d.Stats()
					b.ReportMetric(float64(st.Dropped)/float64(max(st.Emitted, 1))*100, "%dropped")
				}
			})
		}
	}
}
