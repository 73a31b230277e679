package redis_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// benchBody is a no-op task's body: [[], {}, embed].
var benchBody = []byte(`[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)

var (
	benchLang, benchArgsRepr, benchKwargsRepr = []byte("go"), []byte("()"), []byte("{}")
	benchOrigin, benchCT, benchCE             = []byte("gen1@bench"), []byte("application/json"), []byte("utf-8")
)

// benchMessage returns a complete task message as the engine publishes it.
// task and queue are copied into the message.
func benchMessage(queue, task string) *codec.Message {
	m := codec.AcquireMessage()
	m.NewID()
	m.Protocol = 2
	m.Lang = benchLang
	m.Task = m.OwnString(task)
	m.RootID = m.ID
	m.ArgsRepr = benchArgsRepr
	m.KwargsRepr = benchKwargsRepr
	m.Origin = benchOrigin
	m.ContentType = benchCT
	m.ContentEncoding = benchCE
	m.IgnoreResult = true
	m.RoutingKey = m.OwnString(queue)
	m.Body = benchBody
	return m
}

// preload publishes n no-op task messages to queue in batches.
func preload(b testing.TB, br *redis.Broker, queue, task string, n int) {
	b.Helper()
	ctx := context.Background()
	batch := make([]*codec.Message, 0, 1000)
	for i := 0; i < n; i += cap(batch) {
		batch = batch[:0]
		for j := i; j < min(n, i+cap(batch)); j++ {
			batch = append(batch, benchMessage(queue, task))
		}
		if err := br.Publish(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueue measures Publish: one message per call from one
// goroutine, one per call from many goroutines (auto-pipelined), and
// batches of 100 and 1000 per call.
func BenchmarkEnqueue(b *testing.B) {
	br, _ := newBroker(b)
	for _, tc := range []struct {
		name     string
		batch    int
		parallel bool
	}{
		{"one", 1, false}, {"one-parallel", 1, true}, {"batch=100", 100, false}, {"batch=1000", 1000, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			queue := "enq-" + tc.name
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if tc.parallel {
				b.SetParallelism(32)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := br.Publish(ctx, benchMessage(queue, "bench.noop")); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				msgs := make([]*codec.Message, tc.batch)
				for i := 0; i < b.N; i += tc.batch {
					k := min(tc.batch, b.N-i)
					for j := range k {
						msgs[j] = benchMessage(queue, "bench.noop")
					}
					if err := br.Publish(ctx, msgs[:k]...); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			br.PurgeQueue(ctx, queue)
		})
	}
}

// BenchmarkDrain measures a celerity worker draining b.N pre-loaded no-op
// tasks with acks_late (results ignored): from the start of the worker
// until every task ran and every ack reached Redis.
func BenchmarkDrain(b *testing.B) {
	for _, c := range []int{2, 16, 64} {
		b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
			raw := testURL(b)
			prefix := brokertest.Prefix(b)
			defer deletePrefix(b, raw, prefix)
			br, _ := newBrokerAt(b, raw, prefix)
			const queue = "drain"
			preload(b, br, queue, "bench.noop", b.N)
			app, err := engine.New(engine.Config{Broker: br, TaskAcksLate: true, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			var done atomic.Int64
			finished := make(chan struct{})
			n := int64(b.N)
			engine.RegisterRaw(app, "bench.noop", func(context.Context, *engine.Task) error {
				if done.Add(1) == n {
					close(finished)
				}
				return nil
			}, engine.TaskIgnoreResult(true))
			w, err := app.Worker(engine.WorkerConfig{Queues: []string{queue}, Concurrency: c})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			rc := br.Client()
			b.ReportAllocs()
			b.ResetTimer()
			go func() { stopped <- w.Run(ctx) }()
			<-finished
			for { // until the last acks are in Redis
				k, err := rc.Do(context.Background(), rc.B().Hlen().Key(prefix+"unacked").Build()).AsInt64()
				if err != nil || k == 0 {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			cancel()
			if err := <-stopped; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func newBrokerAt(b testing.TB, raw, prefix string, opts ...redis.Option) (*redis.Broker, error) {
	br, err := redis.NewBroker(context.Background(), raw, append([]redis.Option{redis.WithGlobalKeyPrefix(prefix), redis.WithLogger(quiet)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br, nil
}

// BenchmarkRoundTrip measures send, run, Get one task at a time through a
// celerity worker on Redis (broker and result backend), and reports the
// median and 99th percentile latency.
func BenchmarkRoundTrip(b *testing.B) {
	raw := testURL(b)
	prefix := brokertest.Prefix(b)
	defer deletePrefix(b, raw, prefix)
	app, _, _ := newApp(b, raw, engine.Config{}, redis.WithGlobalKeyPrefix(prefix), redis.WithResultKeyPrefix(prefix), redis.WithLogger(quiet))
	engine.RegisterRaw(app, "bench.add", func(ctx context.Context, t *engine.Task) error {
		t.Return([]byte("3"))
		return nil
	})
	runWorker(b, app, engine.WorkerConfig{Concurrency: 2})
	ctx := context.Background()
	args := []byte("[1, 2]")
	lat := make([]time.Duration, 0, b.N)
	// Warm up connections and scripts.
	for range 10 {
		res, _ := app.SendTask(ctx, "bench.add", []any{1, 2}, nil)
		res.Get(ctx)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id := codec.AcquireMessage()
		id.NewID()
		tid := string(id.ID)
		codec.ReleaseMessage(id)
		if err := app.SendRaw(ctx, "bench.add", args, nil, engine.TaskID(tid)); err != nil {
			b.Fatal(err)
		}
		if _, err := app.Result(tid).Wait(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPythonDrain is BenchmarkDrain for the Python Celery worker
// (acks_late, result ignored, Celery's default prefetch) on the same Redis,
// with the solo pool and with the default prefork pool of 2 processes, for
// the ratio in the README. It is slow, so it only runs with
// CELERITY_BENCH_PYTHON=1. The clock starts when the worker takes its
// first message (its start-up is not counted).
func BenchmarkPythonDrain(b *testing.B) {
	if os.Getenv("CELERITY_BENCH_PYTHON") != "1" {
		b.Skip("set CELERITY_BENCH_PYTHON=1 to measure the Python worker")
	}
	for _, pool := range [][]string{{"-P", "solo"}, {"-P", "prefork", "-c", "2"}} {
		b.Run(pool[1], func(b *testing.B) { pythonDrain(b, pool) })
	}
}

func pythonDrain(b *testing.B, pool []string) {
	dir := brokertest.Celery(b)
	raw := withDB(b, testURL(b), interopDB)
	queue := "pydrain-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := queue + ":"
	defer deletePrefix(b, raw, prefix)
	br, _ := newBrokerAt(b, raw, prefix)
	preload(b, br, queue, "interop_bench.noop", b.N)
	rc := br.Client()
	args := append([]string{"-m", "celery", "-A", "interop_app", "worker", "-Q", queue, "-l", "error",
		"--without-gossip", "--without-mingle", "--without-heartbeat"}, pool...)
	cmd := exec.Command(brokertest.Python, args...)
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "CELERITY_INTEROP_DIR="+dir, "PYTHONPATH="+dir, "CELERY_BROKER_URL="+raw,
		"CELERY_RESULT_BACKEND="+raw, "REDIS_GLOBAL_KEYPREFIX="+prefix)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	// Time from the first message taken (the worker has started) until the
	// queue is empty and every ack is in.
	ctx := context.Background()
	for {
		if n, _ := br.QueueLen(ctx, queue); n < b.N {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.ResetTimer()
	for {
		n, _ := br.QueueLen(ctx, queue)
		k, _ := rc.Do(ctx, rc.B().Zcount().Key(prefix+"unacked_index").Min("0").Max("+inf").Build()).AsInt64()
		if n == 0 && k == 0 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkPythonRoundTrip is BenchmarkRoundTrip for the Python client and
// worker (`celery worker -P solo`) on the same Redis. Run with
// CELERITY_BENCH_PYTHON=1.
func BenchmarkPythonRoundTrip(b *testing.B) {
	if os.Getenv("CELERITY_BENCH_PYTHON") != "1" {
		b.Skip("set CELERITY_BENCH_PYTHON=1 to measure the Python worker")
	}
	dir := brokertest.Celery(b)
	raw := withDB(b, testURL(b), interopDB)
	queue := "pyrt-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := queue + ":"
	defer deletePrefix(b, raw, prefix)
	env := append(os.Environ(), "CELERITY_INTEROP_DIR="+dir, "PYTHONPATH="+dir, "CELERY_BROKER_URL="+raw,
		"CELERY_RESULT_BACKEND="+raw, "REDIS_GLOBAL_KEYPREFIX="+prefix)
	worker := exec.Command(brokertest.Python, "-m", "celery", "-A", "interop_app", "worker", "-P", "solo", "-Q", queue,
		"-l", "error", "--without-gossip", "--without-mingle", "--without-heartbeat")
	worker.Dir, worker.Env = "testdata", env
	if err := worker.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { worker.Process.Signal(syscall.SIGTERM); worker.Wait() }()
	client := exec.Command(brokertest.Python, "interop_roundtrip.py", queue, strconv.Itoa(b.N))
	client.Dir, client.Env = "testdata", env
	var stderr strings.Builder
	client.Stderr = &stderr
	b.ResetTimer()
	out, err := client.Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("%v: %s", err, stderr.String())
	}
	var r struct {
		P50 float64 `json:"p50_us"`
		P99 float64 `json:"p99_us"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatalf("%q: %v", out, err)
	}
	b.ReportMetric(r.P50, "p50-µs")
	b.ReportMetric(r.P99, "p99-µs")
}
