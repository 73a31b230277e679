package amqp

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/brokertest"
)

// benchBody is a no-op task's body: [[], {}, embed].
var benchBody = []byte(`[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)

var (
	benchLang, benchArgsRepr, benchKwargsRepr = []byte("go"), []byte("()"), []byte("{}")
	benchOrigin, benchCT, benchCE             = []byte("gen1@bench"), []byte("application/json"), []byte("utf-8")
)

// benchMessage returns a complete task message as the engine publishes it.
func benchMessage(queue, task string) *codec.Message {
	m := codec.AcquireMessage()
	m.NewID()
	m.Protocol = 2
	m.Lang = benchLang
	m.Task = m.OwnString(task)
	m.RootID = m.ID
	m.CorrelationID = m.ID
	m.ArgsRepr = benchArgsRepr
	m.KwargsRepr = benchKwargsRepr
	m.Origin = benchOrigin
	m.ContentType = benchCT
	m.ContentEncoding = benchCE
	m.DeliveryMode = 2
	m.IgnoreResult = true
	m.RoutingKey = m.OwnString(queue)
	m.Body = benchBody
	return m
}

// benchPublishing is what raw amqp091-go sends for the same message,
// built once: the raw baseline pays no encoding.
func benchPublishing(b testing.TB, queue string) amqp091.Publishing {
	m := benchMessage(queue, "bench.noop")
	defer codec.ReleaseMessage(m)
	var p amqp091.Publishing
	if _, _, _, err := (&msgSource{b: &Broker{oid: "bench-oid"}, msgs: []*codec.Message{m}}).fill(0, &p); err != nil {
		b.Fatal(err)
	}
	return p
}

// preload publishes n no-op task messages to queue in batches of 1000.
func preload(b testing.TB, br *Broker, queue, task string, n int) {
	b.Helper()
	batch := make([]*codec.Message, 0, 1000)
	for i := 0; i < n; i += cap(batch) {
		batch = batch[:0]
		for j := i; j < min(n, i+cap(batch)); j++ {
			batch = append(batch, benchMessage(queue, task))
		}
		if err := br.Publish(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// rawChannel opens a raw amqp091-go connection and channel.
func rawChannel(b testing.TB) *amqp091.Channel {
	b.Helper()
	conn, err := amqp091.Dial(testURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

// BenchmarkPublish compares Broker.Publish with raw amqp091-go publishing
// the same message to the same queue in the same run, both with publisher
// confirms: batches of 100 and 1000 messages per call (pipelined, then
// every confirmation awaited; each batch of codec.Messages is built off
// the clock, the raw side reuses one prebuilt amqp091.Publishing), and
// single messages from 32 goroutines (each building its message, as the
// engine's producer does).
// Raw publishing without confirms is there for reference: RabbitMQ
// confirms a persistent message once it is on disk, which bounds the
// confirmed rates.
func BenchmarkPublish(b *testing.B) {
	br := newTestBroker(b, WithLogger(quiet))
	queue := testQueue(b, "bench-pub")
	if err := br.Declare(context.Background(), TaskQueue(queue, 0)); err != nil {
		b.Fatal(err)
	}
	pub := benchPublishing(b, queue)
	ctx := context.Background()
	run := func(name string, parallel bool, f func(next func() bool)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			if parallel {
				b.SetParallelism(16) // 32 goroutines on 2 cores
				b.RunParallel(func(pb *testing.PB) { f(pb.Next) })
			} else {
				i := 0
				f(func() bool { i++; return i <= b.N })
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			br.Purge(queue)
		})
	}
	rawConfirm := rawChannel(b)
	if err := rawConfirm.Confirm(false); err != nil {
		b.Fatal(err)
	}
	// Warm both up (connections, buffers, the runtime), off the clock.
	preload(b, br, queue, "bench.noop", 2000)
	for range 2000 {
		if _, err := rawConfirm.PublishWithDeferredConfirm("", queue, true, false, pub); err != nil {
			b.Fatal(err)
		}
	}
	br.Purge(queue)
	for _, batch := range []int{100, 1000} {
		b.Run("celerity/batch="+strconv.Itoa(batch), func(b *testing.B) {
			// Each batch is built off the clock: making messages is the
			// engine's work, encoding and sending them the transport's.
			msgs := make([]*codec.Message, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for lo := 0; lo < b.N; lo += batch {
				b.StopTimer()
				msgs = msgs[:0]
				for range min(batch, b.N-lo) {
					msgs = append(msgs, benchMessage(queue, "bench.noop"))
				}
				b.StartTimer()
				if err := br.Publish(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			br.Purge(queue)
		})
		dcs := make([]*amqp091.DeferredConfirmation, 0, batch)
		run("raw-confirm/batch="+strconv.Itoa(batch), false, func(next func() bool) {
			for more := true; more; {
				dcs = dcs[:0]
				for len(dcs) < batch {
					if more = next(); !more {
						break
					}
					dc, err := rawConfirm.PublishWithDeferredConfirm("", queue, true, false, pub)
					if err != nil {
						b.Fatal(err)
					}
					dcs = append(dcs, dc)
				}
				for _, dc := range dcs {
					if !dc.Wait() {
						b.Fatal("nacked")
					}
				}
			}
		})
	}
	run("celerity/one-parallel", true, func(next func() bool) {
		for next() {
			if err := br.Publish(ctx, benchMessage(queue, "bench.noop")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	run("raw-confirm/one-parallel", true, func(next func() bool) {
		for next() {
			dc, err := rawConfirm.PublishWithDeferredConfirm("", queue, true, false, pub)
			if err != nil || !dc.Wait() {
				b.Error("raw publish failed", err)
				return
			}
		}
	})
	raw := rawChannel(b)
	run("raw-noconfirm", false, func(next func() bool) {
		for next() {
			if err := raw.Publish("", queue, false, false, pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConsume compares a Consumer (Fetch, decode, Ack coalesced into
// multiple acks, 64 at most by default) with raw amqp091-go
// (basic.consume, ack with multiple=true every 64 deliveries) draining b.N
// preloaded messages, prefetch 1000, in the same run.
func BenchmarkConsume(b *testing.B) {
	br := newTestBroker(b, WithLogger(quiet))
	b.Run("celerity", func(b *testing.B) {
		queue := testQueue(b, "bench-consume")
		preload(b, br, queue, "bench.noop", b.N)
		c, err := br.Consume(context.Background(), []string{queue}, 1000)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := make([]*codec.Message, 256)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for got := 0; got < b.N; {
			n, err := c.Fetch(ctx, buf)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Ack(buf[:n]...); err != nil {
				b.Fatal(err)
			}
			for _, m := range buf[:n] {
				codec.ReleaseMessage(m)
			}
			got += n
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		queue := testQueue(b, "bench-consume-raw")
		preload(b, br, queue, "bench.noop", b.N)
		ch := rawChannel(b)
		if err := ch.Qos(1000, 0, true); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		ds, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 1; i <= b.N; i++ {
			d := <-ds
			if i%64 == 0 || i == b.N {
				if err := ch.Ack(d.DeliveryTag, true); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkDrain measures a celerity worker draining b.N preloaded no-op
// tasks (results ignored), from the start of the worker until every task
// ran and the worker stopped (its consumer sends the pending acks and
// closes its channel, so anything not acknowledged would be back in the
// queue: the benchmark checks that none is).
func BenchmarkDrain(b *testing.B) {
	for _, tc := range []struct {
		c, mult  int
		acksLate bool
	}{{8, 4, false}, {8, 4, true}, {64, 4, true}, {8, 32, true}} {
		name := "c=" + strconv.Itoa(tc.c)
		if tc.mult != 4 {
			name += "/prefetch=" + strconv.Itoa(tc.c*tc.mult)
		}
		if tc.acksLate {
			name += "/acks_late"
		}
		b.Run(name, func(b *testing.B) {
			queue := testQueue(b, "bench-drain")
			br := newTestBroker(b, WithLogger(quiet))
			preload(b, br, queue, "bench.noop", b.N)
			app, err := engine.New(engine.Config{Broker: br, TaskAcksLate: tc.acksLate, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			var done atomic.Int64
			finished := make(chan struct{})
			n := int64(b.N)
			engine.RegisterRaw(app, "bench.noop", func(context.Context, *engine.Task) error {
				if done.Add(1) == n {
					close(finished)
				}
				return nil
			}, engine.TaskIgnoreResult(true))
			w, err := app.Worker(engine.WorkerConfig{Queues: []string{queue}, Concurrency: tc.c, PrefetchMultiplier: tc.mult})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			go func() { stopped <- w.Run(ctx) }()
			<-finished
			cancel()
			if err := <-stopped; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			if left, err := br.QueueLen(context.Background(), queue); err != nil || left != 0 {
				b.Fatalf("%d messages back in the queue (%v): acks were lost", left, err)
			}
		})
	}
}

// waitReady polls (every 5ms: faster polling slows the queue process
// down) until queue has at most left ready messages.
func waitReady(b testing.TB, queue string, left int) {
	a := adminBroker(b)
	ctx := context.Background()
	for {
		n, err := a.QueueLen(ctx, queue)
		if err != nil {
			b.Fatal(err)
		}
		if n <= left {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkRoundTrip measures send, run and wait for one task at a time
// through a celerity worker on RabbitMQ with the rpc:// backend: in one
// app (the result stays in process), and from a separate client (the
// result travels through the client's reply queue). It reports the median
// and 99th percentile latency.
func BenchmarkRoundTrip(b *testing.B) {
	for _, separate := range []bool{false, true} {
		name := "same-app"
		if separate {
			name = "separate-client"
		}
		b.Run(name, func(b *testing.B) {
			queue := testQueue(b, "bench-rt")
			worker, _ := newApp(b, "", engine.Config{TaskDefaultQueue: queue})
			engine.RegisterRaw(worker, "bench.add", func(ctx context.Context, t *engine.Task) error {
				t.Return([]byte("3"))
				return nil
			})
			runWorker(b, worker, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 2})
			client := worker
			if separate {
				client, _ = newApp(b, "", engine.Config{TaskDefaultQueue: queue})
			}
			ctx := context.Background()
			args := []byte("[1, 2]")
			lat := make([]time.Duration, 0, b.N)
			for range 10 { // warm up
				res, _ := client.SendTask(ctx, "bench.add", []any{1, 2}, nil)
				res.Get(ctx)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				tid := codec.NewUUID()
				if err := client.SendRaw(ctx, "bench.add", args, nil, engine.TaskID(tid)); err != nil {
					b.Fatal(err)
				}
				if _, err := client.Result(tid).Wait(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkPythonDrain is BenchmarkDrain for the Python Celery worker
// (`celery worker` running interop.noop, ignore_result, Celery's default
// prefetch multiplier 4) on the same RabbitMQ, with the solo pool and
// the prefork pool of 2 processes, for the ratio in the README. It is
// slow, so it runs only with CELERITY_BENCH_PYTHON=1. The clock starts
// when the worker takes its first message (start-up is not counted) and
// stops when the queue has no more ready messages than the worker's
// prefetch window.
func BenchmarkPythonDrain(b *testing.B) {
	if os.Getenv("CELERITY_BENCH_PYTHON") != "1" {
		b.Skip("set CELERITY_BENCH_PYTHON=1 to measure the Python worker")
	}
	for _, pool := range [][]string{{"-P", "solo"}, {"-P", "prefork", "-c", "2"}} {
		b.Run(pool[1], func(b *testing.B) {
			dir := brokertest.Celery(b)
			queue := testQueue(b, "bench-pydrain")
			br := newTestBroker(b, WithLogger(quiet))
			preload(b, br, queue, "interop.noop", b.N)
			args := append([]string{"-m", "celery", "-A", "interop_app", "worker", "-Q", queue, "-l", "error",
				"--without-gossip", "--without-mingle", "--without-heartbeat"}, pool...)
			cmd := exec.Command(brokertest.Python, args...)
			cmd.Dir = "testdata"
			cmd.Env = append(os.Environ(), "CELERITY_INTEROP_DIR="+dir, "PYTHONPATH="+dir,
				"CELERY_BROKER_URL="+testURL(b), "CELERY_RESULT_BACKEND=rpc://", "PREFETCH_MULTIPLIER=4")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
			waitReady(b, queue, b.N-1)
			b.ResetTimer()
			// Until the last prefetch window (2 processes x 4) is taken:
			// py-amqp may sit on the last few messages it read until its
			// next timer tick, seconds later, which says nothing about
			// the drain rate.
			waitReady(b, queue, 8)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
