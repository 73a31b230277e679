package bench

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

func TestConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
		err  error
	}{
		{Config{N: -1}, "n -1 < 0", ErrBadConfig},
		{Config{Concurrency: -2}, "concurrency -2 < 1", ErrBadConfig},
		{Config{Batch: -1}, "batch -1 < 1", ErrBadConfig},
		{Config{Payload: -1}, "payload -1", ErrBadConfig},
		{Config{Serializer: "pickle"}, `serializer "pickle"`, ErrBadConfig},
		{Config{Pool: "prefork"}, `pool "prefork"`, ErrBadConfig},
		{Config{Compare: "rq"}, `compare "rq"`, ErrBadConfig},
		{Config{CanvasWidth: -1}, "canvas width -1 < 1", ErrBadConfig},
		{Config{Scenarios: []string{"drain", "nosuch"}}, `"nosuch" (known: enqueue, enqueue-batch, drain`, ErrUnknownScenario},
		{Config{Scenarios: []string{"drain", "drain"}}, `"drain" listed twice`, ErrBadConfig},
		{Config{Broker: "kafka://x"}, "kafka://x", ErrUnsupportedTransport},
		{Config{Backend: "redis://127.0.0.1:1/0"}, "memory broker takes the memory backend", ErrUnsupportedTransport},
	} {
		_, err := Run(context.Background(), tc.cfg)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %v with %q", tc.cfg, err, tc.err, tc.want)
		}
	}
}

func TestDefaultsDependOnTransport(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults().withTransport(newMemoryTransport())
	if c.N != DefaultNMemory || c.LatencyN != 10_000 || c.Producers != 1 || c.Serializer != "json" || c.Pool != "goroutine" ||
		len(c.Scenarios) != len(scenarios) || !strings.HasPrefix(c.Prefix, "celerity-bench-") {
		t.Fatalf("memory defaults: %+v", c)
	}
	c = Config{N: 500}.withDefaults().withTransport(newMemoryTransport())
	if c.LatencyN != 500 {
		t.Fatalf("latency n is not capped by n: %d", c.LatencyN)
	}
	c = Config{}.withDefaults().withTransport(&redisTransport{})
	if c.N != DefaultNBroker {
		t.Fatalf("broker default n %d", c.N)
	}
}

// checkReport checks the figures of a short run of every scenario.
func checkReport(t *testing.T, rep *Report, n, latencyN int, transportName string) {
	t.Helper()
	if rep.Settings.Transport != transportName || rep.Settings.N != n || len(rep.Results) != len(scenarios) {
		t.Fatalf("report settings %+v, %d results", rep.Settings, len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Scenario == ScenarioCanvas {
			switch {
			case transportName == "amqp": // rpc:// cannot count chord parts
				if r.Skipped != ErrChordsUnsupported.Error() {
					t.Errorf("canvas on rpc://: skipped %q", r.Skipped)
				}
			case r.Skipped != "" || r.Tasks != n || r.Rate <= 0 || r.Failed != 0 || r.Ceiling != nil:
				t.Errorf("canvas: %+v", r)
			}
			continue
		}
		want := n
		if r.Scenario == ScenarioLatency {
			want = latencyN
			if r.Latency == nil || r.Latency.Count != uint64(latencyN) || r.Latency.P50 <= 0 ||
				r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max || len(r.CDF) == 0 {
				t.Errorf("latency: %+v", r.Latency)
			}
		}
		if r.Skipped != "" || r.Tasks != want || r.Elapsed <= 0 || r.Rate <= 0 || r.Failed != 0 {
			t.Errorf("%s: %+v", r.Scenario, r)
		}
		if r.Ceiling == nil || r.Ceiling.Skipped != "" || r.Ceiling.Rate <= 0 || r.CeilingRatio <= 0 {
			t.Errorf("%s: ceiling %+v, ratio %v", r.Scenario, r.Ceiling, r.CeilingRatio)
		}
	}
}

func TestRunEveryScenarioOnMemory(t *testing.T) {
	t.Parallel()
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{N: 3000, LatencyN: 300, Concurrency: 2, Producers: 2,
		Clients: 2, Payload: 64, CanvasWidth: 30, Progress: &progress, Compare: "celery"})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, 3000, 300, "memory")
	for _, r := range rep.Results {
		// Python cannot reach an in-process broker: every comparison says so.
		if r.Skipped == "" && (r.Celery == nil || !strings.Contains(r.Celery.Skipped, "in-process memory broker")) {
			t.Errorf("%s: celery figure %+v", r.Scenario, r.Celery)
		}
	}
	// Not a terminal: one final line per phase, no carriage returns.
	p := progress.String()
	if strings.Contains(p, "\r") || !strings.Contains(p, "100% 3000/3000") || !strings.Contains(p, "100% 3100/3100") {
		t.Errorf("progress output: %q", p)
	}
}

func TestRunOptionsReachTheTasks(t *testing.T) {
	t.Parallel()
	for _, tc := range []Config{
		{Serializer: "msgpack", Compression: "zlib", Payload: 1000},
		{AcksLate: true, Pool: "solo", PrefetchMultiplier: 1},
		{Serializer: "yaml", Batch: 7},
	} {
		tc.N, tc.LatencyN, tc.Scenarios = 500, 50, []string{ScenarioEnqueueBatch, ScenarioDrain, ScenarioLatency}
		rep, err := Run(context.Background(), tc)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		for _, r := range rep.Results {
			if r.Tasks == 0 || r.Failed != 0 {
				t.Errorf("%+v: %s: %+v", tc, r.Scenario, r)
			}
		}
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Config{N: 1000, Scenarios: []string{ScenarioThroughput}})
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("cancelled run: %v", err)
	}
}

// countingBroker records the sizes of the batches published through it.
type countingBroker struct {
	transport.Broker
	calls atomic.Int64
	msgs  atomic.Int64
}

func (c *countingBroker) Publish(ctx context.Context, msgs ...*codec.Message) error {
	c.calls.Add(1)
	c.msgs.Add(int64(len(msgs)))
	return c.Broker.Publish(ctx, msgs...)
}

func TestBatcherPublishesFullBatchesThenTheRest(t *testing.T) {
	t.Parallel()
	inner := &countingBroker{Broker: memory.NewBroker()}
	defer inner.Close()
	b := newBatcher(inner, 10)
	ctx := context.Background()
	for range 25 {
		m := codec.AcquireMessage()
		m.RoutingKey = []byte("q")
		if err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if inner.calls.Load() != 2 || inner.msgs.Load() != 20 {
		t.Fatalf("before flush: %d calls, %d messages", inner.calls.Load(), inner.msgs.Load())
	}
	if err := b.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.flush(ctx); err != nil { // nothing left: no call
		t.Fatal(err)
	}
	if inner.calls.Load() != 3 || inner.msgs.Load() != 25 || inner.Broker.(*memory.Broker).Len("q") != 25 {
		t.Fatalf("after flush: %d calls, %d messages", inner.calls.Load(), inner.msgs.Load())
	}
}

// The throughput scenario's memory broker holds producers back once its
// queue is full; the enqueue scenario's, loaded with no consumer, does not.
func TestMemoryThroughputQueueIsBounded(t *testing.T) {
	t.Parallel()
	publish := func(scenario string, n int) error {
		b, be, err := newMemoryTransport().Open(context.Background(), scenario)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		defer be.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for i := range n {
			if i == n-1 {
				cancel() // a publish that has to wait gives up at once
			}
			m := codec.AcquireMessage()
			m.RoutingKey = []byte("q")
			if err := b.Publish(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}
	if err := publish(ScenarioThroughput, memoryMaxLength+1); !errors.Is(err, context.Canceled) {
		t.Errorf("throughput: publish past %d queued = %v, want it to wait", memoryMaxLength, err)
	}
	if err := publish(ScenarioEnqueue, memoryMaxLength+1); err != nil {
		t.Errorf("enqueue: %v", err)
	}
}

func TestChanCeiling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var c chanCeiling
	for _, batch := range []int{1, 7} {
		if d, err := c.Enqueue(ctx, 1000, batch, nil); err != nil || d <= 0 {
			t.Errorf("Enqueue batch %d: %v %v", batch, d, err)
		}
	}
	if d, err := c.Drain(ctx, 1000, 8, nil); err != nil || d <= 0 {
		t.Errorf("Drain: %v %v", d, err)
	}
	if d, err := c.Handoff(ctx, 1000, 8, nil); err != nil || d <= 0 {
		t.Errorf("Handoff: %v %v", d, err)
	}
	h := NewHistogram()
	if err := c.RoundTrip(ctx, 100, nil, h); err != nil || h.Count() != 100 {
		t.Errorf("RoundTrip: %v, %d recorded", err, h.Count())
	}
}

// redisBenchURL is the test Redis server's URL on database 13, which the
// bench tests use so that kombu's shared keys (unacked, bindings) of
// database 0 are not touched.
func redisBenchURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(brokertest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/13"
	return u.String()
}

func TestRunOnRedis(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Config{Broker: redisBenchURL(t), Prefix: strings.TrimSuffix(brokertest.Prefix(t), "-"),
		N: 1000, LatencyN: 100, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, 1000, 100, "redis")
}

func TestRunOnRabbitMQ(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), Config{Broker: brokertest.AMQPURL(t), Prefix: strings.TrimSuffix(brokertest.Prefix(t), "-"),
		N: 300, LatencyN: 50, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, 300, 50, "amqp")
}

func TestCompareWithPythonCeleryOnRedis(t *testing.T) {
	t.Parallel()
	brokertest.Celery(t)
	rep, err := Run(context.Background(), Config{Broker: redisBenchURL(t), Prefix: strings.TrimSuffix(brokertest.Prefix(t), "-"),
		N: 200, LatencyN: 30, Compare: "celery", Python: brokertest.Python, Timeout: 2 * time.Minute,
		CanvasWidth: 20, Scenarios: []string{ScenarioEnqueue, ScenarioDrain, ScenarioThroughput, ScenarioLatency, ScenarioCanvas}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		f := r.Celery
		if f == nil || f.Skipped != "" || f.Rate <= 0 || r.CeleryRatio <= 0 {
			t.Errorf("%s: celery figure %+v, ratio %v", r.Scenario, f, r.CeleryRatio)
			continue
		}
		if r.Scenario == ScenarioLatency && (f.Latency == nil || f.Latency.Count != 30) {
			t.Errorf("latency: celery %+v", f.Latency)
		}
	}
}
