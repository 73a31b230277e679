//go:build !race

package redis_test

import (
	"context"
	"testing"

	"github.com/celerity-go/celerity/codec"
)

// TestAllocsPublishOne: publishing one message allocates nothing in
// steady state (pooled scratch and envelope buffers, no retry machinery on
// success).
func TestAllocsPublishOne(t *testing.T) {
	b, _ := newBroker(t)
	ctx := context.Background()
	publishOne := func() {
		if err := b.Publish(ctx, benchMessage("allocs", "bench.noop")); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm the pools
		publishOne()
	}
	if n := testing.AllocsPerRun(200, publishOne); n != 0 {
		t.Fatalf("Publish of one message: %v allocations, want 0", n)
	}
}

// TestAllocsFetchAck: fetching and acknowledging costs one allocation per
// message (the envelope as read from Redis, which the message's fields
// view) plus a few per batch.
func TestAllocsFetchAck(t *testing.T) {
	b, _ := newBroker(t)
	const batch = 100
	preload(t, b, "allocs-fetch", "bench.noop", 300*batch)
	cons := consume(t, b, 0, "allocs-fetch")
	buf := make([]*codec.Message, batch)
	ctx := context.Background()
	round := func() {
		got := 0
		for got < batch {
			n, err := cons.Fetch(ctx, buf[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		if err := cons.Ack(buf...); err != nil {
			t.Fatal(err)
		}
		for _, m := range buf {
			codec.ReleaseMessage(m)
		}
	}
	for range 20 {
		round()
	}
	n := testing.AllocsPerRun(200, round)
	if perMsg := n / batch; perMsg > 1.2 {
		t.Fatalf("fetch+ack: %.2f allocations per message (%v per batch of %d), want <= 1.2", perMsg, n, batch)
	}
	t.Logf("fetch+ack: %.2f allocations per message", n/batch)
}
