package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// ackClock is a memory broker whose consumers note when each Ack call
// arrives.
type ackClock struct {
	*memory.Broker
	mu    sync.Mutex
	times []time.Time
}

func (b *ackClock) Consume(ctx context.Context, queues []string, prefetch int) (transport.Consumer, error) {
	c, err := b.Broker.Consume(ctx, queues, prefetch)
	if err != nil {
		return nil, err
	}
	return &ackClockConsumer{Consumer: c.(*memory.Consumer), b: b}, nil
}

func (b *ackClock) acks() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.times...)
}

type ackClockConsumer struct {
	*memory.Consumer // keeps Poll and Wait: the worker's executors poll it
	b                *ackClock
}

func (c *ackClockConsumer) Ack(msgs ...*codec.Message) error {
	c.b.mu.Lock()
	c.b.times = append(c.b.times, time.Now())
	c.b.mu.Unlock()
	return c.Consumer.Ack(msgs...)
}

// An executor that never runs out of work still sends its early acks
// about every ackDelay: tasks of 2 ms, all prefetched in one batch, would
// otherwise be acknowledged only when the batch is done (or ackBatch of
// them ran), 60 ms after the first started.
func TestBusyExecutorAcksWithinAckDelay(t *testing.T) {
	broker := &ackClock{Broker: memory.NewBroker()}
	app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
	var mu sync.Mutex
	var starts []time.Time
	RegisterRaw(app, "tasks.sleep", func(context.Context, *Task) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		return nil
	}, TaskIgnoreResult(true))
	ctx := testCtx(t, 10*time.Second)
	const n = 30 // under ackBatch: only the age of the acks can send them early
	for range n {
		if err := app.SendRaw(ctx, "tasks.sleep", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1, PrefetchMultiplier: 64})
	eventually(t, "all tasks run", func() bool { return w.Stats().Succeeded.Load() == n })

	mu.Lock()
	first, last := starts[0], starts[n-1]
	mu.Unlock()
	var during []time.Time // acks sent while the batch ran
	for _, at := range broker.acks() {
		if at.After(first) && at.Before(last) {
			during = append(during, at)
		}
	}
	if len(during) == 0 {
		t.Fatalf("no ack while %d tasks of 2 ms ran back to back (%v)", n, last.Sub(first))
	}
	// ackDelay is 5 ms; the age is looked at between tasks, so an ack may
	// wait a task or two more, and a loaded machine stretches both.
	const bound = 30 * time.Millisecond
	prev := first
	for _, at := range append(during, last) {
		if gap := at.Sub(prev); gap > bound {
			t.Errorf("acks %v apart while the executor was busy; want under %v", gap, bound)
		}
		prev = at
	}
}
