package beat

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// newRedisLocker returns a RedisLocker on the test Redis under a key
// prefix unique to t, deleted when t ends.
func newRedisLocker(t testing.TB) (*RedisLocker, *redis.Broker, string) {
	t.Helper()
	url := brokertest.RedisURL(t)
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, url, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.NewBroker(ctx, url, redis.WithGlobalKeyPrefix(prefix), redis.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return NewRedisLocker(b.Client(), prefix+"celerity.beat"), b, prefix
}

func TestRedisLocker(t *testing.T) {
	t.Parallel()
	l, _, _ := newRedisLocker(t)
	// The lease expires on the Redis server's clock; wait past it.
	testLocker(t, l, 50*time.Millisecond, func() { time.Sleep(150 * time.Millisecond) })
}

func TestRedisLockerKeysAndMalformedRecords(t *testing.T) {
	t.Parallel()
	l, b, prefix := newRedisLocker(t)
	ctx := context.Background()
	c := b.Client()
	if _, err := l.Acquire(ctx, "tok", time.Minute); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, c.B().Get().Key(prefix+"celerity.beat").Build()).ToString()
	if err != nil || v != "tok" {
		t.Fatalf("lease key holds %q, %v", v, err)
	}
	ttl, err := c.Do(ctx, c.B().Pttl().Key(prefix+"celerity.beat").Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > 60000 {
		t.Fatalf("lease PTTL %d, %v", ttl, err)
	}
	if err := c.Do(ctx, c.B().Hset().Key(prefix+"celerity.beat:ticks").FieldValue().FieldValue("bad", "not a record").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(ctx); !errors.Is(err, ErrState) {
		t.Fatalf("Load with a malformed record: %v, want ErrState", err)
	}
}
