package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func harness() transporttest.Harness {
	return transporttest.Harness{
		NewBroker: func(t *testing.T) transport.Broker {
			b := memory.NewBroker()
			t.Cleanup(func() { b.Close() })
			return b
		},
		NewBackend: func(t *testing.T) transport.Backend {
			b := memory.NewBackend()
			t.Cleanup(func() { b.Close() })
			return b
		},
		HighPriorityFirst: true,
	}
}

func TestConformanceBroker(t *testing.T)  { transporttest.RunBroker(t, harness()) }
func TestConformanceBackend(t *testing.T) { transporttest.RunBackend(t, harness()) }

// TestManyQueues: past the few queues found by comparing names, lookups go
// through the map; every message still lands in, and leaves from, its own
// queue.
func TestManyQueues(t *testing.T) {
	ctx := context.Background()
	b := memory.NewBroker()
	defer b.Close()
	const queues = 20
	for i := range queues {
		for range i + 1 {
			m := codec.AcquireMessage()
			m.RoutingKey = []byte(fmt.Sprintf("q%d", i))
			if err := b.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range queues {
		name := fmt.Sprintf("q%d", i)
		if n := b.Len(name); n != i+1 {
			t.Errorf("Len(%s) = %d, want %d", name, n, i+1)
		}
		c, err := b.Consume(ctx, []string{name}, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]*codec.Message, 64)
		n, err := c.(transport.Poller).Poll(buf)
		if err != nil || n != i+1 {
			t.Fatalf("Poll(%s) = %d, %v; want %d", name, n, err, i+1)
		}
		for _, m := range buf[:n] {
			if string(m.RoutingKey) != name {
				t.Errorf("message for %s fetched from %s", m.RoutingKey, name)
			}
		}
		if err := c.Ack(buf[:n]...); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if n := b.Purge("q3"); n != 0 {
		t.Errorf("Purge of a drained queue = %d", n)
	}
}

// PublishOne on a closed broker fails as Publish does.
func TestPublishOneAfterClose(t *testing.T) {
	b := memory.NewBroker()
	b.Close()
	m := codec.AcquireMessage()
	m.RoutingKey = []byte("q")
	if err := b.PublishOne(context.Background(), m); err != memory.ErrClosed {
		t.Fatalf("PublishOne after Close = %v, want ErrClosed", err)
	}
}

// A read with a context that is done fails with the context's error, as
// over a network: a loop polling a result until its context ends ends.
func TestGetResultHonoursContext(t *testing.T) {
	b := memory.NewBackend()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.StoreResults(ctx, transport.ResultRecord{TaskID: []byte("t1"), Data: []byte(`{"status": "SUCCESS"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := b.GetResult(ctx, "t1", nil); err != nil || !found {
		t.Fatalf("GetResult = found %v, %v", found, err)
	}
	cancel()
	if _, _, err := b.GetResult(ctx, "t1", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetResult after cancel: %v, want context.Canceled", err)
	}
}
