package redis_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// ours counts goroutines running this package's code or rueidis's.
func ours() (n int, dump string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "celerity/transport/redis.") && !strings.Contains(g, "redis_test.") ||
			strings.Contains(g, "redis/rueidis.") {
			n++
			dump += g + "\n\n"
		}
	}
	return n, dump
}

// TestCloseLeavesNoGoroutines: a broker with a consumer that watched,
// fetched and held messages, and a backend with subscriptions, leave no
// goroutine behind once closed. (Not parallel: it counts goroutines.)
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before, _ := ours()
	func() {
		b, _ := newBroker(t)
		ctx := ctxT(t, 10*time.Second)
		c, err := b.Consume(ctx, []string{"leak-a", "leak-b"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		transporttest.FetchNone(t, c, 50*time.Millisecond) // arms the watchers
		if err := b.Publish(ctx, transporttest.NewMessage("leak-a", "l-1", 0)); err != nil {
			t.Fatal(err)
		}
		got := transporttest.FetchN(t, c, 1, 5*time.Second)
		codec.ReleaseMessage(got[0])
		be, _ := newBackend(t)
		sub, err := be.Subscribe(ctx, "leak")
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Next(ctx, nil); err == nil {
			t.Fatal("subscription outlived its backend")
		}
		if err := b.Close(); err != nil { // closes c, requeueing l-1
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, dump := ours()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left (had %d before):\n%s", n, before, dump)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
