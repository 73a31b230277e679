package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/celerity-go/celerity/bench"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/pprof"
)

// runBench is `celerity bench`: the whole-system benchmark of package
// bench. With no flags it runs every scenario on the memory transport.
func runBench(ctx context.Context, args []string, o Options) error {
	fs := newFlags("bench", "[flags]", o)
	var c bench.Config
	fs.StringVar(&c.Broker, "broker", "", "broker URL: memory:// (default), redis://host:port/db, amqp://user:pass@host:port/vhost;\nuse a Redis DB or RabbitMQ vhost of the bench's own")
	fs.StringVar(&c.Backend, "backend", "", "result backend URL (default: the broker's own kind; rpc:// with RabbitMQ)")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios (default all): "+strings.Join(scenarioNames(), ", "))
	fs.IntVar(&c.N, "n", 0, fmt.Sprintf("tasks per throughput scenario (default %d on memory, %d on a broker)", bench.DefaultNMemory, bench.DefaultNBroker))
	fs.IntVar(&c.LatencyN, "latency-n", 10_000, "timed round trips of the latency scenario (at most -n)")
	fs.IntVar(&c.Concurrency, "c", runtime.NumCPU(), "worker concurrency")
	fs.IntVar(&c.PrefetchMultiplier, "prefetch-multiplier", 4, "worker_prefetch_multiplier")
	fs.IntVar(&c.Producers, "producers", 1, "goroutines sending tasks")
	fs.IntVar(&c.Batch, "batch", 100, "batch size of enqueue-batch")
	fs.IntVar(&c.Clients, "clients", 1, "concurrent clients of the latency scenario")
	fs.IntVar(&c.CanvasWidth, "canvas-width", 100, "header tasks per chord of the canvas scenario")
	fs.IntVar(&c.Payload, "payload", 0, "bytes of the string argument each task gets (0: none)")
	fs.StringVar(&c.Serializer, "serializer", "json", "task_serializer: json, msgpack or yaml")
	fs.StringVar(&c.Compression, "compression", "", "task_compression: zlib, bzip2, zstd, ... (default none)")
	fs.BoolVar(&c.AcksLate, "acks-late", false, "task_acks_late")
	fs.StringVar(&c.Pool, "pool", "goroutine", "worker_pool: goroutine or solo")
	fs.StringVar(&c.Compare, "compare", "", `"celery": run the same scenarios with Python Celery on the same broker`)
	fs.StringVar(&c.Python, "python", "/usr/bin/python3", "Python interpreter with Celery, for --compare celery")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Minute, "bound of each scenario")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout instead of the table")
	htmlPath := fs.String("html", "", "also write a self-contained HTML plot of the report to this file")
	quiet := fs.Bool("quiet", false, "no progress bar on stderr")
	loglevel := fs.String("loglevel", "error", "log level of the engine and transports: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if *scenarios != "" {
		c.Scenarios = strings.Split(*scenarios, ",")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*loglevel)); err != nil {
		return fmt.Errorf("--loglevel: %w", err)
	}
	c.Logger = slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: level}))
	if !*quiet {
		c.Progress = o.Stderr
	}
	rep, runErr := bench.Run(ctx, c)
	if rep == nil {
		return runErr
	}
	if *htmlPath != "" {
		if err := writeHTML(rep, *htmlPath); err != nil {
			return err
		}
	}
	var err error
	if *asJSON {
		err = rep.WriteJSON(o.Stdout)
	} else {
		err = rep.WriteTable(o.Stdout)
	}
	if runErr != nil {
		return runErr
	}
	return err
}

func scenarioNames() []string {
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s[0])
	}
	return names
}

func writeHTML(rep *bench.Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("--html: %w", err)
	}
	return f.Close()
}

// servePprof starts the worker's --pprof endpoint (package pprof):
// profiles, runtime metrics, the worker's counters, task run times and the
// depth of its queues. Call it before the worker runs (it adds hooks). The
// returned function shuts it down.
func servePprof(addr string, app *engine.App, w *engine.Worker, queues []string, o Options) (stop func(), err error) {
	m := pprof.NewMetrics()
	m.AddWorker(w)
	app.AddHooks(m.Hooks())
	if len(queues) == 0 {
		queues = []string{app.Config().TaskDefaultQueue}
	}
	switch b := app.Broker().(type) {
	case interface {
		QueueLen(ctx context.Context, queue string) (int, error)
	}:
		m.WatchQueues(b.QueueLen, queues...)
	case interface{ Len(queue string) int }:
		m.WatchQueues(func(_ context.Context, q string) (int, error) { return b.Len(q), nil }, queues...)
	}
	srv, err := pprof.Start(addr, pprof.WithMetrics(m))
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	fmt.Fprintf(o.Stderr, "profiles on %s/debug/pprof/, metrics on %s/metrics\n", srv.URL(), srv.URL())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), pprof.DefaultShutdownTimeout)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
