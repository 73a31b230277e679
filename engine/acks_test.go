package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// A task that runs long has its early acknowledgement sent while it runs,
// as Celery acknowledges before the task starts: held until the task
// returned, an hour-long task's ack would outlast Redis's visibility
// timeout or RabbitMQ's consumer timeout and the task would be delivered
// again. A late acknowledgement still waits for the task.
func TestLongTaskIsAckedEarlyWhileItRuns(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("acks_late=%v", late), func(t *testing.T) {
			broker := &ackClock{Broker: memory.NewBroker()}
			app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
			started, release := make(chan struct{}), make(chan struct{})
			var releaseOnce sync.Once
			unblock := func() { releaseOnce.Do(func() { close(release) }) }
			RegisterRaw(app, "tasks.block", func(context.Context, *Task) error {
				close(started)
				<-release
				return nil
			}, TaskIgnoreResult(true), AcksLate(late))
			ctx := testCtx(t, 10*time.Second)
			if err := app.SendRaw(ctx, "tasks.block", nil, nil); err != nil {
				t.Fatal(err)
			}
			w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
			t.Cleanup(unblock) // runs before the worker's stop, which waits for the task
			<-started
			if late {
				// Three looks of the watcher, and more.
				time.Sleep(4 * ackWatchEvery)
				if n := len(broker.acks()); n != 0 {
					t.Fatalf("%d acks while an acks_late task ran", n)
				}
			} else {
				eventually(t, "the running task's ack", func() bool { return len(broker.acks()) > 0 })
			}
			unblock()
			eventually(t, "the task done", func() bool { return w.Stats().Succeeded.Load() == 1 })
			eventually(t, "one ack in all", func() bool { return len(broker.acks()) == 1 })
		})
	}
}

// Reject from a task acknowledged early leaves its message acknowledged,
// as Celery's Request.reject does (it rejects only what is unacknowledged):
// the task is not delivered again, even when the ack was still unsent.
func TestRejectAfterEarlyAckDoesNotRequeue(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
	var runs atomic.Int32
	RegisterRaw(app, "tasks.reject", func(context.Context, *Task) error {
		runs.Add(1)
		return Reject("again", true)
	})
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	if err := app.SendRaw(ctx, "tasks.reject", nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rejected", func() bool { return w.Stats().Rejected.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := runs.Load(); n != 1 || broker.Len("celery") != 0 {
		t.Fatalf("runs %d, queue %d: an early-acked task came back", n, broker.Len("celery"))
	}
}

// The prefetch window holds concurrency x worker_prefetch_multiplier
// messages that have not been acknowledged, as Celery's basic.qos does:
// with acks_late the running tasks are among them; acknowledged early,
// they leave the window once their acks are sent (while they run, see
// TestLongTaskIsAckedEarlyWhileItRuns), and as many more are reserved.
func TestPrefetchWindowCountsUnacknowledgedTasks(t *testing.T) {
	for _, c := range []struct {
		late bool
		left int // of 10 sent, with 2 running and a window of 4
	}{{late: true, left: 10 - 4}, {late: false, left: 10 - 2 - 4}} {
		t.Run(fmt.Sprintf("acks_late=%v", c.late), func(t *testing.T) {
			t.Parallel()
			broker := memory.NewBroker()
			app := newApp(t, Config{Broker: broker, Backend: memory.NewBackend()})
			release := make(chan struct{})
			var running atomic.Int32
			RegisterRaw(app, "tasks.hold", func(context.Context, *Task) error {
				running.Add(1)
				<-release
				return nil
			}, TaskIgnoreResult(true), AcksLate(c.late))
			ctx := testCtx(t, 10*time.Second)
			for range 10 {
				if err := app.SendRaw(ctx, "tasks.hold", nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			startWorker(t, app, WorkerConfig{Concurrency: 2, PrefetchMultiplier: 2})
			t.Cleanup(func() { close(release) }) // before the worker's stop
			eventually(t, "two tasks running", func() bool { return running.Load() == 2 })
			eventually(t, fmt.Sprintf("%d messages left in the queue", c.left), func() bool { return broker.Len("celery") == c.left })
			time.Sleep(4 * ackWatchEvery) // and no more are taken
			if n := broker.Len("celery"); n != c.left || running.Load() != 2 {
				t.Fatalf("%d left in the queue, %d running; want %d and 2", n, running.Load(), c.left)
			}
		})
	}
}
