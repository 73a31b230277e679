package amqp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/internal/interoptest"
)

func TestDelayTTL(t *testing.T) {
	t.Parallel()
	const th = 10 * time.Minute
	tests := []struct{ wait, want time.Duration }{
		{11 * time.Minute, 5 * time.Minute},
		{15 * time.Minute, 10 * time.Minute},
		{16 * time.Minute, 10 * time.Minute},
		{25 * time.Minute, 20 * time.Minute},
		{24 * time.Hour, 5 * time.Minute << 8},        // 21h20m, leaves 2h40m
		{400 * 24 * time.Hour, 5 * time.Minute << 12}, // 14.2 days: the largest under maxDelayTTL
	}
	for _, tc := range tests {
		got := delayTTL(tc.wait, th)
		if got != tc.want {
			t.Errorf("delayTTL(%v) = %v, want %v", tc.wait, got, tc.want)
		}
		if left := tc.wait - got; left < th/2 {
			t.Errorf("delayTTL(%v) leaves %v, less than th/2", tc.wait, left)
		}
	}
	// Every wait converges under the threshold in a few trips.
	for _, wait := range []time.Duration{th + 1, time.Hour, 7 * 24 * time.Hour, 365 * 24 * time.Hour} {
		trips := 0
		for w := wait; w > th; w -= delayTTL(w, th) {
			trips++
		}
		if trips > 40 {
			t.Errorf("%v takes %d trips", wait, trips)
		}
	}
}

// cleanupDelayQueues deletes the delay queues a threshold th can use.
func cleanupDelayQueues(t *testing.T, th time.Duration) {
	a := adminBroker(t)
	t.Cleanup(func() {
		for ttl := th / 2; ttl <= 64*th; ttl *= 2 {
			q := delayQueue(ttl)
			a.DeleteQueue(context.Background(), q.Name)
			a.DeleteExchange(context.Background(), q.Exchange.Name)
		}
	})
}

// TestParkFarETA: a task due further away than the threshold is parked in
// a delay queue (acked, so RabbitMQ's consumer_timeout never sees it
// held), dead-lettered back to its queue, and handed out once due within
// the threshold, without x-death headers; tasks behind it are not held up.
func TestParkFarETA(t *testing.T) {
	t.Parallel()
	const th = 400 * time.Millisecond
	cleanupDelayQueues(t, th)
	b := newTestBroker(t, WithETAThreshold(th))
	queue := testQueue(t, "park")
	eta := time.Now().Add(2 * time.Second)
	far := newTask(queue, "far-1")
	far.ETA = eta
	if err := b.Publish(t.Context(), far, newTask(queue, "now-1")); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(t.Context(), []string{queue}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	buf := make([]*codec.Message, 4)
	n, err := c.Fetch(ctx, buf)
	if err != nil || n != 1 || string(buf[0].ID) != "now-1" {
		t.Fatalf("first fetch: %d %v, want now-1 alone", n, err)
	}
	c.Ack(buf[0])
	codec.ReleaseMessage(buf[0])
	// Parked: neither in the task queue nor held by us.
	waitFor(t, ctx, "the far task to be parked", func() bool {
		n, err := b.QueueLen(ctx, delayQueue(delayTTL(time.Until(eta), th)).Name)
		return err == nil && n == 1
	})
	n, err = c.Fetch(ctx, buf)
	got := time.Now()
	if err != nil || n != 1 || string(buf[0].ID) != "far-1" {
		t.Fatalf("second fetch: %d %v, want far-1", n, err)
	}
	defer codec.ReleaseMessage(buf[0])
	if early := eta.Sub(got); early > th {
		t.Fatalf("handed out %v before its ETA, more than the threshold %v", early, th)
	}
	if !buf[0].ETA.Equal(eta.UTC().Truncate(time.Microsecond)) || strings.Contains(string(buf[0].ExtraHeaders), "x-death") {
		t.Fatalf("came back as eta=%v extra=%s", buf[0].ETA, buf[0].ExtraHeaders)
	}
	c.Ack(buf[0])
}

// TestEngineFarETA: a celerity worker runs a task whose countdown exceeds
// the threshold on time, after the consumer parked it.
func TestEngineFarETA(t *testing.T) {
	t.Parallel()
	const th = 300 * time.Millisecond
	cleanupDelayQueues(t, th)
	queue := testQueue(t, "engine-eta")
	app, _ := newApp(t, "", engine.Config{TaskDefaultQueue: queue}, WithETAThreshold(th))
	interoptest.RegisterTasks(app, nil)
	runWorker(t, app, engine.WorkerConfig{Queues: []string{queue}, Concurrency: 2})
	ctx := ctxT(t, 20*time.Second)
	start := time.Now()
	res, err := app.SendTask(ctx, "interop.add", []any{20, 22}, nil, engine.Countdown(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "42" {
		t.Fatalf("add = %v, %v", v, err)
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("ran after %v, before its countdown", el)
	}
}

// TestInteropParkedTaskRunsOnPython: a task parked by a celerity consumer
// comes back, dead-lettered with RabbitMQ's x-death headers, to a queue a
// Python worker consumes, which runs it; the result reaches the Go client
// over rpc://.
func TestInteropParkedTaskRunsOnPython(t *testing.T) {
	t.Parallel()
	const th = 340 * time.Millisecond // a threshold of its own: tests delete their delay queues
	cleanupDelayQueues(t, th)
	py := newPython(t, "rpc://")
	queue := testQueue(t, "park-py")
	client, b := newApp(t, "", engine.Config{TaskDefaultQueue: queue}, WithMaxPriority(interopPriority), WithETAThreshold(th))
	ctx := ctxT(t, 60*time.Second)
	res, err := client.SendTask(ctx, "interop.add", []any{1, 2}, nil, engine.Countdown(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(ctx, []string{queue}, 1)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if n, err := c.Fetch(short, make([]*codec.Message, 1)); err == nil {
		t.Fatalf("fetched %d messages; the task should have been parked", n)
	}
	c.Close()
	py.worker(t, queue)
	if v, err := res.Get(ctx); err != nil || fmt.Sprint(v) != "3" {
		t.Fatalf("add = %v, %v", v, err)
	}
}
