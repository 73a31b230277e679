package bench

import (
	"context"
	"errors"
	"time"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// memoryTransport gives each scenario a fresh in-process broker and
// backend.
type memoryTransport struct{}

func newMemoryTransport() *memoryTransport { return &memoryTransport{} }

func (*memoryTransport) Name() string { return "memory" }

// memoryMaxLength bounds the memory broker's queues in the throughput
// scenario, where producers and a worker run together at full speed.
// Unbounded, producers that outrun the worker grow the queue instead of
// waiting: it reached ~100k messages, and the allocations and garbage
// collections of holding them cost more than the producers saved (4.0 ->
// 1.7 M tasks/s with a faster producer, -n 500000). A broker's flow
// control holds producers to the consumers' pace, and the ceiling's
// handoff channel is bounded too. Enqueue and drain load a queue with no
// consumer, so theirs must stay unbounded; latency and canvas keep the
// engine's default, unbounded broker.
const memoryMaxLength = 4096

func (*memoryTransport) Open(_ context.Context, scenario string) (transport.Broker, transport.Backend, error) {
	if scenario == ScenarioThroughput {
		return memory.NewBroker(memory.MaxLength(memoryMaxLength)), memory.NewBackend(), nil
	}
	return memory.NewBroker(), memory.NewBackend(), nil
}

func (*memoryTransport) Ceiling() Ceiling { return chanCeiling{} }

func (*memoryTransport) CeleryURLs() (string, string, error) {
	return "", "", errors.New("Python Celery cannot reach an in-process memory broker: use --broker redis://... or amqp://...")
}

func (*memoryTransport) Cleanup(context.Context, []string) error { return nil }

func (*memoryTransport) Close() error { return nil }

// chanCeiling is the memory transport's ceiling: task messages handed
// from goroutine to goroutine through buffered channels, the least any
// in-process queue must do.
type chanCeiling struct{}

// item stands for a task message: the channel carries pointers, as the
// memory broker does.
type item struct {
	body []byte
	seq  int
}

func (chanCeiling) Name() string { return "buffered chan" }

func makeItems(n int, payload []byte) []*item {
	items := make([]*item, n)
	for i := range items {
		items[i] = &item{body: payload, seq: i}
	}
	return items
}

func (chanCeiling) Enqueue(ctx context.Context, n, batch int, payload []byte) (time.Duration, error) {
	items := makeItems(n, payload)
	if batch <= 1 {
		ch := make(chan *item, n)
		start := time.Now()
		for _, it := range items {
			ch <- it
		}
		return time.Since(start), ctx.Err()
	}
	ch := make(chan []*item, (n+batch-1)/batch)
	start := time.Now()
	for i := 0; i < n; i += batch {
		ch <- items[i:min(i+batch, n)]
	}
	return time.Since(start), ctx.Err()
}

func (chanCeiling) Drain(ctx context.Context, n, _ int, payload []byte) (time.Duration, error) {
	ch := make(chan *item, n)
	for _, it := range makeItems(n, payload) {
		ch <- it
	}
	close(ch)
	start := time.Now()
	sum := 0
	for it := range ch {
		sum += it.seq
	}
	d := time.Since(start)
	if sum != n*(n-1)/2 {
		return 0, errors.New("bench: chan drain lost items")
	}
	return d, ctx.Err()
}

func (chanCeiling) Handoff(ctx context.Context, n, window int, payload []byte) (time.Duration, error) {
	items := makeItems(n, payload)
	ch := make(chan *item, max(window, 1))
	done := make(chan int)
	start := time.Now()
	go func() {
		got := 0
		for range ch {
			got++
		}
		done <- got
	}()
	for _, it := range items {
		ch <- it
	}
	close(ch)
	got := <-done
	d := time.Since(start)
	if got != n {
		return 0, errors.New("bench: chan handoff lost items")
	}
	return d, ctx.Err()
}

func (chanCeiling) RoundTrip(ctx context.Context, n int, payload []byte, h *Histogram) error {
	req, rep := make(chan *item, 1), make(chan *item, 1)
	go func() {
		for it := range req {
			rep <- it
		}
	}()
	defer close(req)
	it := &item{body: payload}
	for range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		req <- it
		<-rep
		h.RecordDuration(time.Since(start))
	}
	return nil
}
